"""Deterministic "model" behind the fake OpenAI upstream: response objects and their SSE events.

Pure functions, no I/O: ``respond`` turns a request body (plus the items of the
``previous_response_id`` chain) into the final response object; ``stream_events`` derives the
exact event sequence that OpenAI streams for that response, so the streamed and non-streamed
answers can never disagree.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any

Json = dict[str, Any]

COMPUTER_TOOLS = ("computer_use_preview", "computer")
ID_PREFIXES = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "computer_call": "cu",
    "computer_call_output": "cuo",
    "reasoning": "rs",
}
# Item types whose API representation carries a status.
STATUS_TYPES = {"message", "function_call", "function_call_output", "computer_call", "computer_call_output"}
ROLES = ("user", "assistant", "system", "developer")
REASONING_TOKENS = 16
# Word-sized chunks whose concatenation is exactly the original text.
CHUNK = re.compile(r"\S+\s*|\s+")


class ApiError(Exception):
    """An error OpenAI would answer with, in its ``{"error": {...}}`` shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def payload(self) -> Json:
        return {"message": self.message, "type": self.type, "param": self.param, "code": self.code}


def new_id(prefix: str, nbytes: int = 24) -> str:
    return f"{prefix}_{secrets.token_hex(nbytes)}"


def chunks(text: str) -> list[str]:
    return CHUNK.findall(text)


def obfuscation(delta: str) -> str:
    # OpenAI pads delta events with random characters so that lengths do not leak tokens;
    # a fixed padding keeps the fake deterministic.
    return "0123456789abcdef"[: 16 - len(delta) % 16]


# --- input ---------------------------------------------------------------------------------


def normalize_items(raw: Any) -> list[Json]:
    """Request ``input`` as the typed items OpenAI stores: ids, statuses, content lists."""
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [{"role": "user", "content": raw}]
    if not isinstance(raw, list):
        raise ApiError(
            400,
            "Invalid type for 'input': expected one of a string or array of input items,"
            f" but got {type(raw).__name__} instead.",
            param="input",
            code="invalid_type",
        )
    items: list[Json] = []
    for index, given in enumerate(raw):
        if not isinstance(given, dict):
            raise ApiError(
                400,
                f"Invalid type for 'input[{index}]': expected an object.",
                param=f"input[{index}]",
                code="invalid_type",
            )
        kind = given.get("type", "message")
        item: Json = {"id": given.get("id") or new_id(ID_PREFIXES.get(kind, "item")), "type": kind}
        item.update({k: v for k, v in given.items() if k not in ("id", "type")})
        if kind == "message":
            role = item.get("role")
            if role not in ROLES:
                raise ApiError(
                    400,
                    f"Invalid value: '{role}'. Supported values are: 'assistant', 'system', 'developer', and 'user'.",
                    param=f"input[{index}].role",
                    code="invalid_value",
                )
            if isinstance(item.get("content"), str):
                text = item["content"]
                part = {"type": "output_text", "text": text, "annotations": []} if role == "assistant" else None
                item["content"] = [part or {"type": "input_text", "text": text}]
        if kind in STATUS_TYPES:
            item.setdefault("status", "completed")
        items.append(item)
    return items


def check_tool_pairs(context: list[Json]) -> None:
    """OpenAI rejects a function call output without its call, and a call without its output."""
    calls = [i.get("call_id") for i in context if i["type"] == "function_call"]
    outputs = [i.get("call_id") for i in context if i["type"] == "function_call_output"]
    for call_id in outputs:
        if call_id not in calls:
            raise ApiError(400, f"No tool call found for function call output with call_id {call_id}.", param="input")
    for call_id in calls:
        if call_id not in outputs:
            raise ApiError(400, f"No tool output found for function call {call_id}.", param="input")


def message_text(item: Json) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    parts = [p.get("text") or p.get("refusal") or "" for p in content or [] if isinstance(p, dict)]
    return " ".join(p for p in parts if p)


def tool_output_text(item: Json) -> str:
    output = item.get("output")
    if isinstance(output, str):
        return output
    if isinstance(output, dict):  # computer_call_output: {"type": "computer_screenshot", ...}
        return str(output.get("type", ""))
    if isinstance(output, list):
        return " ".join(str(p.get("text", "")) for p in output if isinstance(p, dict) and p.get("text"))
    return ""


def item_text(item: Json) -> str:
    kind = item["type"]
    if kind == "message":
        return message_text(item)
    if kind == "function_call":
        return f"{item.get('name', '')} {item.get('arguments', '')}"
    if kind == "reasoning":
        return " ".join(s.get("text", "") for s in item.get("summary") or [])
    if kind.endswith("_output"):
        return tool_output_text(item)
    return ""


def count_tokens(items: list[Json]) -> int:
    # Four tokens of framing per item plus one per word: crude, but stable and monotonic.
    return sum(4 + len(item_text(item).split()) for item in items)


# --- output --------------------------------------------------------------------------------


def respond(body: Json, chain: list[Json], text_override: str | None = None) -> tuple[Json, list[Json]]:
    """The final response object for ``body`` and the full list of input items it used."""
    if not body.get("model"):
        raise ApiError(400, "Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
    new_items = normalize_items(body.get("input"))
    context = chain + new_items
    check_tool_pairs(context)

    users = [i for i in context if i["type"] == "message" and i.get("role") == "user"]
    turns = len(users)
    last_user = message_text(users[-1]) if users else ""
    last = (new_items or context or [{"type": "message"}])[-1]
    said = f"tool said {tool_output_text(last)}" if last["type"].endswith("call_output") else last_user

    tools: list[Json] = body.get("tools") or []
    choice = body.get("tool_choice", "auto")
    forced = choice.get("name") if isinstance(choice, dict) and choice.get("type") == "function" else None
    functions = [t for t in tools if t.get("type") == "function"]
    computer = next((t for t in tools if t.get("type") in COMPUTER_TOOLS), None)

    output: list[Json] = []
    reasoning = body.get("reasoning")
    if reasoning is not None:
        output.append(reasoning_item(body, said))
    incomplete = False
    # A computer session: screenshot, click, type, each after the previous action's screenshot,
    # counted since the last user message; then the model answers.
    turn = context
    since_user = max((n for n, i in enumerate(turn) if i.get("role") == "user"), default=-1)
    screens = sum(i["type"] == "computer_call_output" for i in turn[since_user + 1 :])
    if computer is not None and choice != "none" and not forced and screens < len(COMPUTER_STEPS):
        output.append(computer_call(computer, COMPUTER_STEPS[screens]))
    elif functions and choice != "none" and (forced or choice == "required" or last["type"] != "function_call_output"):
        output.append(
            {
                "id": new_id("fc"),
                "type": "function_call",
                "status": "completed",
                "arguments": json.dumps({"q": last_user}),
                "call_id": new_id("call", 12),
                "name": forced or functions[0]["name"],
            }
        )
    else:
        text = text_override if text_override is not None else f"Echo (turns={turns}): {said}"
        text_format = (body.get("text") or {}).get("format") or {}
        if text_override is None and text_format.get("type") in ("json_object", "json_schema"):
            text = json.dumps({"echo": said, "turns": turns})
        limit = body.get("max_output_tokens")
        if isinstance(limit, int) and limit < len(text.split()):
            text = "".join(chunks(text)[:limit]).rstrip()
            incomplete = True
        part = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
        output.append(
            {
                "id": new_id("msg"),
                "type": "message",
                "status": "incomplete" if incomplete else "completed",
                "content": [part],
                "role": "assistant",
            }
        )

    input_tokens = len(str(body.get("instructions") or "").split()) + count_tokens(context)
    reasoning_tokens = REASONING_TOKENS if reasoning is not None else 0
    output_tokens = reasoning_tokens + sum(len(item_text(i).split()) for i in output if i["type"] != "reasoning")
    usage = {
        "input_tokens": input_tokens,
        # What the chain contributed, as if it were served from the prompt cache.
        "input_tokens_details": {"cached_tokens": count_tokens(chain), "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "total_tokens": input_tokens + output_tokens,
    }
    status = "incomplete" if incomplete else "completed"
    return response_object(body, output, status, usage), context


def reasoning_item(body: Json, said: str) -> Json:
    settings: Json = body.get("reasoning") or {}
    item: Json = {"id": new_id("rs"), "type": "reasoning", "summary": []}
    if settings.get("summary") or settings.get("generate_summary"):
        item["summary"] = [{"type": "summary_text", "text": f"**Echoing** The user said: {said}"}]
    if "reasoning.encrypted_content" in (body.get("include") or []):
        sealed = json.dumps({"id": item["id"], "said": said}).encode()
        item["encrypted_content"] = "gAAAAAB" + base64.urlsafe_b64encode(sealed).decode()
    return item


COMPUTER_STEPS: tuple[Json, ...] = (
    {"type": "screenshot"},
    {"type": "click", "button": "left", "x": 100, "y": 200},
    {"type": "type", "text": "hello"},
)


def computer_call(tool: Json, step: Json) -> Json:
    action = dict(step)
    item: Json = {"id": new_id("cu"), "type": "computer_call", "status": "completed", "call_id": new_id("call", 12)}
    if tool["type"] == "computer":  # the GA tool batches actions
        item["actions"] = [action]
    else:
        item["action"] = action
    item["pending_safety_checks"] = [
        {
            "id": new_id("cu_sc", 12),
            "code": "malicious_instructions",
            "message": "The page may contain instructions the user did not write. Confirm before continuing.",
        }
    ]
    return item


def normalize_tool(tool: Json) -> Json:
    if tool.get("type") == "function":
        return {"type": "function", "description": None, "parameters": None, "strict": True, **tool}
    return tool


def response_object(body: Json, output: list[Json], status: str, usage: Json) -> Json:
    now = int(time.time())
    reasoning = body.get("reasoning")
    if reasoning is None:
        reasoning_echo: Json = {"effort": None, "summary": None}
    else:
        summary = reasoning.get("summary") or reasoning.get("generate_summary")
        reasoning_echo = {"effort": reasoning.get("effort", "medium"), "summary": summary}
    service_tier = body.get("service_tier")
    return {
        "id": new_id("resp"),
        "object": "response",
        "created_at": now,
        "status": status,
        "background": body.get("background") is True,
        "completed_at": now if status == "completed" else None,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "model": body["model"],
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "prompt": body.get("prompt"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": reasoning_echo,
        "safety_identifier": body.get("safety_identifier"),
        "service_tier": "default" if service_tier in (None, "auto") else service_tier,
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}, "verbosity": "medium", **(body.get("text") or {})},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": [normalize_tool(t) for t in body.get("tools") or []],
        "top_logprobs": body.get("top_logprobs", 0),
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": usage,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def snapshot(final: Json, status: str, error: Json | None = None) -> Json:
    """The response as seen before it finished (or after it was cancelled or failed)."""
    return {
        **final,
        "status": status,
        "completed_at": None,
        "error": error,
        "incomplete_details": None,
        "output": [],
        "usage": None,
    }


# --- streaming -----------------------------------------------------------------------------


def stream_events(final: Json, *, queued: bool = False, obfuscate: bool = True) -> Iterator[Json]:
    """OpenAI's event sequence for ``final``, without sequence numbers."""
    created = snapshot(final, "queued" if queued else "in_progress")
    yield {"type": "response.created", "response": created}
    if queued:
        yield {"type": "response.queued", "response": created}
    yield {"type": "response.in_progress", "response": snapshot(final, "in_progress")}
    for index, item in enumerate(final["output"]):
        for event in item_events(index, item):
            if obfuscate and "delta" in event:
                event["obfuscation"] = obfuscation(event["delta"])
            yield event
    terminal = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
    yield {"type": terminal, "response": final}


def item_events(index: int, item: Json) -> Iterator[Json]:
    kind = item["type"]
    where: Json = {"item_id": item["id"], "output_index": index}
    if kind == "message":
        yield added(index, {**item, "status": "in_progress", "content": []})
        for content_index, part in enumerate(item["content"]):
            at = {**where, "content_index": content_index}
            yield {"type": "response.content_part.added", **at, "part": {**part, "text": ""}}
            for piece in chunks(part["text"]):
                yield {"type": "response.output_text.delta", **at, "delta": piece, "logprobs": []}
            yield {"type": "response.output_text.done", **at, "text": part["text"], "logprobs": []}
            yield {"type": "response.content_part.done", **at, "part": part}
    elif kind == "reasoning":
        yield added(index, {k: v for k, v in item.items() if k != "encrypted_content"} | {"summary": []})
        for summary_index, part in enumerate(item["summary"]):
            at = {**where, "summary_index": summary_index}
            yield {"type": "response.reasoning_summary_part.added", **at, "part": {**part, "text": ""}}
            for piece in chunks(part["text"]):
                yield {"type": "response.reasoning_summary_text.delta", **at, "delta": piece}
            yield {"type": "response.reasoning_summary_text.done", **at, "text": part["text"]}
            yield {"type": "response.reasoning_summary_part.done", **at, "part": part}
    elif kind == "function_call":
        yield added(index, {**item, "status": "in_progress", "arguments": ""})
        for piece in chunks(item["arguments"]):
            yield {"type": "response.function_call_arguments.delta", **where, "delta": piece}
        yield {"type": "response.function_call_arguments.done", **where, "arguments": item["arguments"]}
    else:
        yield added(index, {**item, "status": "in_progress"} if "status" in item else item)
    yield {"type": "response.output_item.done", "output_index": index, "item": item}


def added(index: int, item: Json) -> Json:
    return {"type": "response.output_item.added", "output_index": index, "item": item}
