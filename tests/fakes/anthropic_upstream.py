"""Fake Anthropic Messages API upstream: a real HTTP server speaking api.anthropic.com's wire format.

Run with ``python -m tests.fakes.anthropic_upstream --port N``. The official SDK takes the server
root as ``base_url`` (it appends ``/v1/messages``); the health answer reports ``base_path: "/v1"``.

The "model" is deterministic: it answers ``Echo (turns=N): <last user text>`` where N counts the
user turns that carry text, calls the first custom tool (``{"q": <last user text>}``) until a
``tool_result`` comes back, then says ``Echo (turns=N): tool said <result text>``. A computer tool
gets ``screenshot``, then ``left_click`` at [100, 200], then ``type`` "hello", then the echo.
With ``thinking`` enabled (or adaptive) a signed ``thinking`` block comes first.

A reply script posted to ``/_fake/enqueue`` (a dict, or a list of dicts) is consumed, FIFO, by the
next ``POST /v1/messages``:

- ``{"status": 529, "headers": {...}, "body": {...} | "text"}``: answer with that error
  (an Anthropic-shaped default body when ``body`` is omitted)
- ``{"headers": {...}}``: extra headers on a normal reply
- ``{"delay": 0.2}``: wait before answering
- ``{"delta_delay": 0.3}``: sleep before each streamed ``content_block_delta``
- ``{"overloaded_after_events": 3}``: stream 3 events, then an ``overloaded_error`` error event
  (non-streaming: a 529)
- ``{"fail_after_events": 3}``: the same with an ``api_error`` (non-streaming: a 500)
- ``{"drop_after_events": 3}``: stream 3 events, then cut the connection (non-streaming: half the body)
- ``{"text": "..."}``: the assistant text to produce instead of the echo

With the web search server tool (``web_search_20250305``) the model searches for the last user text:
a ``server_tool_use`` block, its ``web_search_tool_result`` (two results, from ``allowed_domains[0]``
when given), then the echo as a text block citing both results (``web_search_result_location``).

Prompt caching is accounted as Anthropic does (tests/fakes/prompt_cache.py): a prefix up to a
``cache_control`` block (or the last block, with top-level ``cache_control``) of at least 1024
tokens is written on first sight and read by later requests; ``input_tokens`` excludes both.
More than 4 marks, or a mark on a thinking block or an empty text block, is a 400. Tokens are
words, tools included.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import re
import secrets
import string
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.chat_upstream import CHUNK, words
from tests.fakes.control import Control, DropConnection, TruncatedResponse, json_response, serve
from tests.fakes.prompt_cache import MAX_MARKS, Block, PromptCache, count_marks, has_mark, unmarked

Json = dict[str, Any]

BASE_PATH = "/v1"
BAD_KEY = "bad-key"
# Each computer tool version only exists behind its beta header.
COMPUTER_BETAS = {
    "computer_20241022": "computer-use-2024-10-22",
    "computer_20250124": "computer-use-2025-01-24",
    "computer_20251124": "computer-use-2025-11-24",
}
COMPUTER_ACTIONS: list[Json] = [
    {"action": "screenshot"},
    {"action": "left_click", "coordinate": [100, 200]},
    {"action": "type", "text": "hello"},
]
ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "Not found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit."),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out."),
    529: ("overloaded_error", "Overloaded"),
}
IMAGE_MAGIC = {"image/png": b"\x89PNG", "image/jpeg": b"\xff\xd8\xff", "image/gif": b"GIF8", "image/webp": b"RIFF"}
THINKING_DOCS = (
    "Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
)
ALPHABET = string.ascii_letters + string.digits
# Anthropic-defined tools are versioned by date: computer_20250124, bash_20250124, web_search_20250305...
VERSIONED_TOOL = re.compile(r"^[a-z_]+_\d{8}$")
INTERLEAVED_BETA = "interleaved-thinking-2025-05-14"
Handler = Callable[..., Awaitable[Response]]
# Stream scripts: after N events, an error event with this status, or (None) a cut connection.
CUTOFFS = (("overloaded_after_events", 529), ("fail_after_events", 500), ("drop_after_events", None))


class ApiError(Exception):
    """An error Anthropic would answer with, in its ``{"type": "error", "error": {...}}`` shape."""

    def __init__(self, status: int, message: str | None = None) -> None:
        self.kind, default = ERRORS.get(status, ERRORS[500])
        self.status, self.message = status, message or default
        super().__init__(self.message)

    def body(self, request_id: str) -> Json:
        return {"type": "error", "error": {"type": self.kind, "message": self.message}, "request_id": request_id}


def new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(ALPHABET) for _ in range(22))


def betas(header: str) -> set[str]:
    return {b.strip() for b in header.split(",") if b.strip()}


def sign(thinking: str) -> str:
    # Opaque to clients, but the fake can check that a replayed block was not altered.
    return base64.b64encode(b"fake-signature:" + hashlib.sha256(thinking.encode()).digest()).decode()


# --- request --------------------------------------------------------------------------------


def blocks(message: Json) -> list[Json]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content or [] if isinstance(b, dict)]


def text_of(message: Json) -> str:
    return " ".join(b.get("text", "") for b in blocks(message) if b.get("type") == "text" and b.get("text"))


def result_text(block: Json) -> str:
    content = block.get("content")
    if isinstance(content, str):
        return content
    parts = [p.get("text", "") if p.get("type") == "text" else str(p.get("type")) for p in content or []]
    return " ".join(p for p in parts if p)


def block_text(block: Json) -> str:
    kind = block.get("type")
    if kind == "text":
        return str(block.get("text", ""))
    if kind == "thinking":
        return str(block.get("thinking", ""))
    if kind == "tool_use":
        return f"{block.get('name', '')} {json.dumps(block.get('input', {}))}"
    if kind == "tool_result":
        return result_text(block)
    return ""


def prompt_blocks(body: Json) -> list[Block]:
    """The prompt as the cache sees it: tools, system, then every message's blocks."""
    out = [Block(words(json.dumps(unmarked(t))), ["tool", unmarked(t)], "cache_control" in t)
           for t in body.get("tools") or [] if isinstance(t, dict)]  # fmt: skip
    system = body.get("system")
    system = [{"type": "text", "text": system}] if isinstance(system, str) and system else system
    for b in system if isinstance(system, list) else []:
        if isinstance(b, dict):
            out.append(Block(words(str(b.get("text", ""))), ["system", unmarked(b)], "cache_control" in b))
    for m in body.get("messages") or []:
        if isinstance(m, dict):
            out += [Block(words(block_text(b)), [m.get("role"), unmarked(b)], has_mark(b)) for b in blocks(m)]
    if isinstance(body.get("cache_control"), dict) and out:  # automatic caching: up to the last block
        out[-1] = replace(out[-1], marked=True)
    return out


def count_input_tokens(body: Json) -> int:
    return sum(b.tokens for b in prompt_blocks(body))


def validate_cache_marks(body: Json) -> None:
    found = count_marks(body)
    if found > MAX_MARKS:
        raise ApiError(400, f"A maximum of {MAX_MARKS} blocks with cache_control may be provided. Found {found}.")
    groups = [body.get("tools"), body.get("system"), *(blocks(m) for m in body["messages"] if isinstance(m, dict))]
    for group in [[{"cache_control": body["cache_control"]}] if "cache_control" in body else [], *groups]:
        for block in group if isinstance(group, list) else []:
            mark = block.get("cache_control") if isinstance(block, dict) else None
            if mark is None:
                continue
            if (
                not isinstance(mark, dict)
                or mark.get("type") != "ephemeral"
                or mark.get("ttl", "5m") not in ("5m", "1h")
            ):
                raise ApiError(400, "cache_control: Input tag does not match the expected tag 'ephemeral'")
            if block.get("type") in ("thinking", "redacted_thinking"):
                raise ApiError(400, "cache_control cannot be set for thinking blocks")
            if block.get("type") == "text" and not block.get("text"):
                raise ApiError(400, "cache_control cannot be set for empty text blocks")


def is_results(message: Json) -> bool:
    content = blocks(message)
    return message["role"] == "user" and bool(content) and all(b.get("type") == "tool_result" for b in content)


def thinking_on(body: Json) -> bool:
    return (body.get("thinking") or {}).get("type") in ("enabled", "adaptive")


def validate(body: Any, beta: str, *, count_only: bool = False) -> None:
    """The 400s of the real API that an adapter is most likely to trip over."""
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object.")
    for field in ("model", "messages") if count_only else ("model", "max_tokens", "messages"):
        if body.get(field) is None:
            raise ApiError(400, f"{field}: Field required")
    if not count_only and (not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1):
        raise ApiError(400, "max_tokens: Input should be greater than or equal to 1")
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages: at least one message is required")
    system = body.get("system")
    if isinstance(system, list) and any(not isinstance(b, dict) or b.get("type") != "text" for b in system):
        raise ApiError(400, "system: Input should be a valid string or a list of text blocks")
    validate_thinking(body)
    validate_cache_marks(body)
    for index, tool in enumerate(body.get("tools") or []):
        kind = tool.get("type") or "custom"
        needed = COMPUTER_BETAS.get(kind)
        if needed and needed not in betas(beta):
            raise ApiError(400, f"tools.{index}: '{kind}' requires the `anthropic-beta: {needed}` header")
        if kind == "custom" and (not tool.get("name") or "input_schema" not in tool):
            raise ApiError(
                400, f"tools.{index}.custom.{'name' if not tool.get('name') else 'input_schema'}: Field required"
            )
        if kind.startswith("web_search_"):
            validate_search_tool(tool, index)
        if kind != "custom" and not VERSIONED_TOOL.match(kind):
            # e.g. an OpenAI-style {"type": "function", "function": {...}} tool
            raise ApiError(
                400, f"tools.{index}: Input tag '{kind}' found using 'type' does not match any of the expected tags"
            )
    pending: list[str] = []  # tool_use ids of the previous assistant message
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            raise ApiError(400, f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = blocks(message)
        for j, block in enumerate(content):
            validate_block(block, f"messages.{i}.content.{j}")
        # Results must open the user message that follows the tool_use message, before any text.
        leading = [b.get("tool_use_id") for b in itertools.takewhile(lambda b: b.get("type") == "tool_result", content)]
        for j, used in enumerate(leading):
            if used not in pending:
                raise ApiError(
                    400,
                    f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: {used}."
                    " Each `tool_result` block must have a corresponding `tool_use` block in the previous message.",
                )
        unanswered(i - 1, [u for u in pending if u not in leading])
        pending = [b.get("id", "") for b in content if b.get("type") == "tool_use"] if role == "assistant" else []
    unanswered(len(messages) - 1, pending)
    check_thinking_replay(body)


def validate_search_tool(tool: Json, index: int) -> None:
    if tool.get("name") != "web_search":
        raise ApiError(400, f"tools.{index}.web_search_20250305.name: Input should be 'web_search'")
    if tool.get("allowed_domains") and tool.get("blocked_domains"):
        raise ApiError(400, "Cannot specify both allowed_domains and blocked_domains")
    uses = tool.get("max_uses")
    if uses is not None and (not isinstance(uses, int) or uses < 1):
        raise ApiError(400, f"tools.{index}.web_search_20250305.max_uses: Input should be greater than 0")
    location = tool.get("user_location")
    if location is not None and (not isinstance(location, dict) or location.get("type") != "approximate"):
        raise ApiError(400, f"tools.{index}.web_search_20250305.user_location.type: Input should be 'approximate'")


def unanswered(index: int, ids: list[str]) -> None:
    if ids:
        raise ApiError(
            400,
            f"messages.{index}: `tool_use` ids were found without `tool_result` blocks immediately after:"
            f" {', '.join(ids)}. Each `tool_use` block must have a corresponding `tool_result` block in the"
            " next message.",
        )


def validate_block(block: Json, where: str) -> None:
    kind = block.get("type")
    if kind == "thinking":
        if not block.get("signature"):
            raise ApiError(400, f"{where}.thinking.signature: Field required")
        if block["signature"] != sign(str(block.get("thinking", ""))):
            raise ApiError(400, f"{where}: Invalid `signature` in `thinking` block")
    elif kind == "web_search_tool_result" and isinstance(block.get("content"), list):
        if any(not r.get("encrypted_content") for r in block["content"]):
            raise ApiError(400, f"{where}.web_search_tool_result.content.0.encrypted_content: Field required")
    elif kind == "text" and any(not c.get("encrypted_index") for c in block.get("citations") or []
                                if c.get("type") == "web_search_result_location"):  # fmt: skip
        raise ApiError(400, f"{where}.text.citations.0.web_search_result_location.encrypted_index: Field required")
    elif kind == "document":
        validate_document(block.get("source") or {}, where)
    elif kind == "redacted_thinking" and not block.get("data"):
        raise ApiError(400, f"{where}.redacted_thinking.data: Field required")
    elif kind == "image":
        source = block.get("source") or {}
        if source.get("type") == "url" and not source.get("url"):
            raise ApiError(400, f"{where}.image.source.url.url: Field required")
        if source.get("type") == "base64":
            media_type = source.get("media_type")
            if media_type not in IMAGE_MAGIC:
                raise ApiError(
                    400,
                    f"{where}.image.source.base64.media_type: Input should be 'image/jpeg', 'image/png',"
                    " 'image/gif' or 'image/webp'",
                )
            try:
                data = base64.b64decode(source.get("data") or "", validate=True)
            except ValueError:
                data = b""
            if not data.startswith(IMAGE_MAGIC[media_type]):
                raise ApiError(
                    400,
                    f"{where}.image.source.base64: The image was specified using the {media_type} media type,"
                    f" but does not appear to be a valid {media_type.split('/')[1]} image",
                )
        elif source.get("type") not in ("url", "file"):
            raise ApiError(400, f"{where}.image.source: Input tag '{source.get('type')}' is not a valid source type")


def validate_document(source: Json, where: str) -> None:
    if source.get("type") == "url" and not str(source.get("url", "")).startswith(("http://", "https://")):
        raise ApiError(400, f"{where}.document.source.url.url: URL must use http or https")
    elif source.get("type") == "base64":
        if source.get("media_type") != "application/pdf":
            raise ApiError(400, f"{where}.document.source.base64.media_type: Input should be 'application/pdf'")
        try:
            data = base64.b64decode(source.get("data") or "", validate=True)
        except ValueError:
            data = b""
        if not data.startswith(b"%PDF"):
            raise ApiError(400, f"{where}.document.source.base64.data: The PDF specified was not valid.")
    elif source.get("type") not in ("url", "text", "content", "file"):
        raise ApiError(400, f"{where}.document.source: Input tag '{source.get('type')}' is not a valid source type")


def search_blocks(tool: Json, query: str, answer: str) -> list[Json]:
    """What Claude's web search produces: the search, its results, and the answer citing them."""
    domain, slug = (tool.get("allowed_domains") or ["example.com"])[0], re.sub(r"\W+", "-", query)[:40]
    results = [
        {"type": "web_search_result", "url": f"https://{domain}/wiki/{i}-{slug}",
         "title": f"{query} ({i}) - {domain}", "encrypted_content": base64.b64encode(secrets.token_bytes(48)).decode(),
         "page_age": "April 30, 2025"}
        for i in (1, 2)
    ]  # fmt: skip
    use = {"type": "server_tool_use", "id": new_id("srvtoolu_01"), "name": "web_search", "input": {"query": query}}
    citations = [
        {"type": "web_search_result_location", "url": r["url"], "title": r["title"],
         "encrypted_index": base64.b64encode(secrets.token_bytes(24)).decode(), "cited_text": f"{query} is known."}
        for r in results
    ]  # fmt: skip
    return [
        {"type": "text", "text": "Let me search for that.", "citations": None},
        use,
        {"type": "web_search_tool_result", "tool_use_id": use["id"], "content": results},
        {"type": "text", "text": answer, "citations": citations},
        {"type": "text", "text": " That is what two sources say.", "citations": None},
    ]


def validate_thinking(body: Json) -> None:
    thinking = body.get("thinking") or {}
    if thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            raise ApiError(400, "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
        if isinstance(body.get("max_tokens"), int) and body["max_tokens"] <= budget:
            raise ApiError(400, f"`max_tokens` must be greater than `thinking.budget_tokens`. {THINKING_DOCS}")
    if thinking_on(body):
        if (body.get("tool_choice") or {}).get("type") in ("any", "tool"):
            raise ApiError(400, "Thinking may not be enabled when tool_choice forces tool use.")
        if body.get("temperature") not in (None, 1, 1.0):
            raise ApiError(400, "`temperature` may only be set to 1 when thinking is enabled.")


def check_thinking_replay(body: Json) -> None:
    """With thinking on, the assistant turn that called the pending tools must start with its thinking."""
    messages = body["messages"]
    if not thinking_on(body) or not is_results(messages[-1]):
        return
    # The turn began after the last user message that was more than tool results.
    user_turns = [i for i, m in enumerate(messages) if m["role"] == "user" and not is_results(m)]
    index = user_turns[-1] + 1 if user_turns else 0
    first = (blocks(messages[index]) or [{}])[0]
    if first.get("type") not in ("thinking", "redacted_thinking"):
        raise ApiError(
            400,
            f"messages.{index}.content.0.type: Expected `thinking` or `redacted_thinking`, but found"
            f" `{first.get('type')}`. When `thinking` is enabled, a final `assistant` message must start with a"
            " thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend"
            f" you include thinking blocks from previous turns. To avoid this requirement, disable `thinking`."
            f" {THINKING_DOCS}",
        )


# --- response -------------------------------------------------------------------------------


def respond(body: Json, text_override: str | None = None, beta: str = "") -> Json:
    """The final ``message`` object for a validated request body."""
    messages: list[Json] = body["messages"]
    texted = [m for m in messages if m["role"] == "user" and text_of(m)]
    turns, last_text = len(texted), text_of(texted[-1]) if texted else ""
    last = messages[-1]
    results = [b for b in blocks(last) if b.get("type") == "tool_result"] if last["role"] == "user" else []
    said = f"tool said {result_text(results[-1])}" if results else last_text

    tools: list[Json] = body.get("tools") or []
    choice: Json = body.get("tool_choice") or {"type": "auto"}
    computer = next((t for t in tools if t.get("type") in COMPUTER_BETAS), None)
    search = next((t for t in tools if str(t.get("type", "")).startswith("web_search_")), None)
    custom = [t for t in tools if t.get("type") in (None, "custom") and "input_schema" in t]
    forced = choice.get("name") if choice.get("type") == "tool" else None
    computer_uses = {
        b.get("id") for m in messages for b in blocks(m) if b.get("type") == "tool_use" and b.get("name") == "computer"
    }
    screens = sum(1 for m in messages for b in blocks(m) if b.get("tool_use_id") in computer_uses)

    content: list[Json] = []
    # Thinking opens an assistant turn; after a tool result it needs interleaved thinking (adaptive implies it).
    interleaved = (body.get("thinking") or {}).get("type") == "adaptive" or INTERLEAVED_BETA in betas(beta)
    if thinking_on(body) and (not results or interleaved):
        thought = f"The user said: {said}. I will echo it."
        if (body.get("thinking") or {}).get("display") == "omitted":
            thought = ""
        content.append({"type": "thinking", "thinking": thought, "signature": sign(thought)})
    stop_reason, stop_sequence = "end_turn", None
    if choice.get("type") != "none" and computer and screens < len(COMPUTER_ACTIONS) and forced in (None, "computer"):
        action = COMPUTER_ACTIONS[screens]
        content.append({"type": "tool_use", "id": new_id("toolu_01"), "name": computer["name"], "input": action})
        stop_reason = "tool_use"
    elif choice.get("type") != "none" and custom and (forced or choice.get("type") == "any" or not results):
        name = forced or custom[0]["name"]
        content.append({"type": "tool_use", "id": new_id("toolu_01"), "name": name, "input": {"q": last_text}})
        stop_reason = "tool_use"
    else:
        text = text_override if text_override is not None else f"Echo (turns={turns}): {said}"
        if ((body.get("output_config") or {}).get("format") or {}).get("type") == "json_schema":
            text = json.dumps({"echo": text, "turns": turns})  # structured outputs: JSON text
        hits = [(text.find(s), s) for s in body.get("stop_sequences") or [] if s and s in text]
        if hits:
            at, stop_sequence = min(hits)
            text, stop_reason = text[:at], "stop_sequence"
        budget = body["max_tokens"] - sum(words(b["thinking"]) for b in content)
        if words(text) > budget:
            text = "".join(CHUNK.findall(text)[: max(budget, 0)]).rstrip()
            stop_reason, stop_sequence = "max_tokens", None
        if search is not None and stop_reason == "end_turn" and text_override is None:
            content += search_blocks(search, said, text)
        else:
            content.append({"type": "text", "text": text})

    usage_extra = {"server_tool_use": {"web_search_requests": 1}} if search is not None and any(
        b["type"] == "server_tool_use" for b in content) else {}  # fmt: skip
    return {
        "id": new_id("msg_01"),
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": {
            "input_tokens": count_input_tokens(body),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": max(1, sum(words(block_text(b)) for b in content)),
            "service_tier": "standard",
            **usage_extra,
        },
    }


def stream_events(final: Json) -> Iterator[Json]:
    """Anthropic's event sequence for ``final``; a ``ping`` follows the first block start, as upstream."""
    usage = {**final["usage"], "output_tokens": 1}
    shell = {**final, "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}
    yield {"type": "message_start", "message": shell}
    for index, block in enumerate(final["content"]):
        kind = block["type"]
        # Blocks open empty: text "", thinking "" with signature "", tool_use with input {}.
        empty = {"text": {"text": ""}, "thinking": {"thinking": "", "signature": ""}, "tool_use": {"input": {}},
                 "server_tool_use": {"input": {}}, "web_search_tool_result": {}}[kind]  # fmt: skip
        start = {k: v for k, v in {**block, **empty}.items() if k != "citations"}  # citations come as deltas
        yield {"type": "content_block_start", "index": index, "content_block": start}
        if index == 0:
            yield {"type": "ping"}
        if kind == "text":
            deltas = [{"type": "citations_delta", "citation": c} for c in block.get("citations") or []]
            deltas += [{"type": "text_delta", "text": piece} for piece in CHUNK.findall(block["text"])]
        elif kind == "web_search_tool_result":
            deltas = []
        elif kind == "thinking":
            deltas = [{"type": "thinking_delta", "thinking": piece} for piece in CHUNK.findall(block["thinking"])]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        else:
            pieces = ["", *CHUNK.findall(json.dumps(block["input"]))]
            deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in pieces]
        for delta in deltas:
            yield {"type": "content_block_delta", "index": index, "delta": delta}
        yield {"type": "content_block_stop", "index": index}
    delta = {"stop_reason": final["stop_reason"], "stop_sequence": final["stop_sequence"]}
    yield {"type": "message_delta", "delta": delta, "usage": {"output_tokens": final["usage"]["output_tokens"]}}
    yield {"type": "message_stop"}


def sse_frame(event: Json) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


# --- server ---------------------------------------------------------------------------------


def cached_usage(usage: Json, body: Json, cache: PromptCache) -> Json:
    """`usage` with the prompt split as the cache served it."""
    u = cache.account(str(body["model"]), prompt_blocks(body))
    creation = {"ephemeral_5m_input_tokens": u.written, "ephemeral_1h_input_tokens": 0}  # 1h marks: counted as 5m
    return {**usage, "input_tokens": u.uncached, "cache_creation_input_tokens": u.written,
            "cache_read_input_tokens": u.read, "cache_creation": creation}  # fmt: skip


def build_app() -> Starlette:
    cache = PromptCache()
    control = Control("anthropic", BASE_PATH, on_reset=cache.clear)

    def check_headers(request: Request) -> None:
        # Classic clients send x-api-key; the current official SDK sends the key as a bearer token.
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        key = request.headers.get("x-api-key", "").strip() or (bearer.strip() if scheme.lower() == "bearer" else "")
        if not key:
            raise ApiError(401, "x-api-key header is required")
        if key == BAD_KEY:
            raise ApiError(401, "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            raise ApiError(400, "anthropic-version: header is required")

    def scripted_error(script: Json, request_id: str) -> Response:
        status, body = int(script["status"]), script.get("body")
        if isinstance(body, str):
            return Response(body, status_code=status, media_type="text/plain")
        return json_response(body if body is not None else ApiError(status).body(request_id), status)

    def api(handler: Handler, *, scripted: bool = False, auth: bool = True) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            record = await control.record(request)
            request_id = "req_011C" + "".join(secrets.choice(ALPHABET) for _ in range(20))
            record["request_id"] = request_id
            script = control.next_script(record) if scripted else {}
            if script.get("delay"):
                await asyncio.sleep(float(script["delay"]))
            if (bent := await control.before(request, record, script)) is not None:
                return bent
            try:
                if int(script.get("status", 200)) >= 400:
                    response = scripted_error(script, request_id)
                else:
                    if auth:
                        check_headers(request)
                    if record.get("raw_body") is not None:
                        raise ApiError(400, "There was an issue with your request body: invalid JSON.")
                    response = control.after(request, record, script, await handler(request, record, script))
            except ApiError as error:
                response = json_response(error.body(request_id), error.status)
            response.headers["request-id"] = request_id
            response.headers.update({str(k).lower(): str(v) for k, v in (script.get("headers") or {}).items()})
            return response

        return endpoint

    async def stream(events: Iterator[Json], script: Json, record: Json) -> AsyncIterator[bytes]:
        delta_delay = float(script.get("delta_delay") or 0)
        cutoffs = [(int(script[key]), status) for key, status in CUTOFFS if script.get(key) is not None]
        finished = False
        try:
            for count, event in enumerate(events):
                for after, status in cutoffs:
                    if count >= after:
                        finished = True
                        if status is None:
                            raise DropConnection("scripted drop_after_events")
                        yield sse_frame({"type": "error", "error": ApiError(status).body("")["error"]})
                        return
                if delta_delay and event["type"] == "content_block_delta":
                    await asyncio.sleep(delta_delay)
                yield sse_frame(event)
            finished = True
        finally:
            if not finished:
                record["disconnected"] = True

    async def create_message(request: Request, record: Json, script: Json) -> Response:
        body = record["body"]
        validate(body, request.headers.get("anthropic-beta", ""))
        final = respond(body, script.get("text"), request.headers.get("anthropic-beta", ""))
        final["usage"] = cached_usage(final["usage"], body, cache)
        if body.get("stream") is True:
            return StreamingResponse(stream(stream_events(final), script, record), media_type="text/event-stream")
        for key, status in CUTOFFS:
            if script.get(key) is not None and status is not None:
                raise ApiError(status)
            if script.get(key) is not None:
                return TruncatedResponse(orjson.dumps(final), media_type="application/json")
        return json_response(final)

    async def count_tokens(request: Request, record: Json, script: Json) -> Response:
        validate(record["body"], request.headers.get("anthropic-beta", ""), count_only=True)
        return json_response({"input_tokens": count_input_tokens(record["body"])})

    async def list_models(request: Request, record: Json, script: Json) -> Response:
        ids = ["claude-opus-4-7", "claude-sonnet-4-6", "claude-haiku-4-5"]
        data = [{"type": "model", "id": i, "display_name": i, "created_at": "2025-11-24T00:00:00Z"} for i in ids]
        return json_response({"data": data, "has_more": False, "first_id": ids[0], "last_id": ids[-1]})

    async def not_found(request: Request, record: Json, script: Json) -> Response:
        raise ApiError(404, "Not Found")

    every_method = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    routes = [
        *control.routes(),
        Route(BASE_PATH + "/messages", api(create_message, scripted=True), methods=["POST"]),
        Route(BASE_PATH + "/messages/count_tokens", api(count_tokens), methods=["POST"]),
        Route(BASE_PATH + "/models", api(list_models), methods=["GET"]),
        Route("/{path:path}", api(not_found, auth=False), methods=every_method),
    ]
    app = Starlette(routes=routes)
    app.state.fake = control
    return app


def main(argv: list[str] | None = None) -> None:
    serve(lambda args: build_app(), __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    main()
