"""Anthropic Messages API <-> Responses, translated directly (no Chat Completions hop).

Request mapping
| Responses                          | Messages                                                         |
|------------------------------------|------------------------------------------------------------------|
| instructions, system/developer msg | system (text, joined)                                            |
| message input_text / output_text   | text block (user / assistant turn)                               |
| input_image (data: URL / https)    | image block, source base64 / url                                 |
| input_file (data: URL / file_url)  | document block, source base64 / url                              |
| function_call                      | assistant tool_use {id: call_id, name, input}                    |
| function_call_output               | user tool_result {tool_use_id: call_id, content}                 |
| reasoning (Anthropic-signed)       | assistant thinking {thinking: summary, signature} (or redacted)  |
| tools: function                    | {name, description, input_schema}                                |
| tools: web_search(_preview)        | web_search_20250305 (+ allowed_domains, user_location)           |
| tools: computer_use_preview        | computer_20250124 / _20251124 (newer models) + its beta header   |
| computer_call                      | assistant tool_use "computer" (actions mapped in computer.py)    |
| computer_call_output               | user tool_result with the screenshot as an image block           |
| tool_choice auto/required/none/fn  | {type: auto / any / none / tool}                                 |
| parallel_tool_calls: false         | tool_choice.disable_parallel_tool_use: true                      |
| text.format json_schema            | output_config.format {type: json_schema, schema}                 |
| text.format json_object            | output_config.format with schema {type: object}                  |
| reasoning.effort                   | thinking {type: enabled, budget_tokens} by EFFORT_BUDGET; none: disabled |
| max_output_tokens                  | max_tokens (default 4096 + thinking budget); reasoning on: over 1024 or a 400 |
| temperature, top_p                 | temperature, top_p                                               |
| user, safety_identifier            | metadata.user_id                                                 |
| (automatic prompt caching)         | cache_control marks on tools, system, earlier turns (prompt_cache.py) |
| prompt_cache_key                   | with prompt caching off: top-level cache_control {type: ephemeral} |
| service_tier auto / default        | service_tier auto / standard_only                                |

Output mapping: text -> message/output_text; thinking -> reasoning (summary = the thinking text,
encrypted_content = the signature, so it replays); redacted_thinking -> reasoning with
encrypted_content only; tool_use -> function_call (call_id = tool_use id), or computer_call
for the computer tool; server web search -> web_search_call (its query, its results' URLs as
sources); web_search_result_location citations -> url_citation annotations over the cited text
block; stop_reason max_tokens and model_context_window_exceeded -> incomplete (max_output_tokens), refusal -> incomplete
(content_filter); usage with cache reads as cached tokens.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from .. import errors
from ..streaming.events import CHARS_PER_TOKEN, Run, StreamEvent
from ..streaming.sse import Frame
from ..transport import HttpRequest
from . import computer, convert, prompt_cache, web_search
from .base import Call, Json, usage
from .registry import Deployment
from .support import Support
from .translator import BuilderTranslator

NAME = "anthropic"
VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
MIN_THINKING = 1024  # the least thinking budget Anthropic accepts
EFFORT_BUDGET = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32768}
# encrypted_content carries the provider's own reasoning state, tagged so that only
# Anthropic ever gets it back (another provider could not verify it).
SIGNED = "anthropic:"
REDACTED = "anthropic-redacted:"
SUPPORT = Support(
    NAME,
    fields=frozenset(
        {
            "tools",
            "tool_choice",
            "parallel_tool_calls",
            "text",
            "reasoning",
            "max_output_tokens",
            "temperature",
            "top_p",
            "user",
            "safety_identifier",
            "prompt_cache_key",
            "service_tier",
            "include",
            "truncation",
        }
    ),
    tools=frozenset({"function", "web_search", "web_search_preview", "computer_use_preview"}),
    includes=frozenset({"reasoning.encrypted_content", "web_search_call.action.sources"}),
)
# The computer tool and its beta header, by model generation.
COMPUTER = {
    "new": ("computer_20251124", "computer-use-2025-11-24"),
    "old": ("computer_20250124", "computer-use-2025-01-24"),
}
_NEW_COMPUTER = ("claude-opus-4-5", "claude-opus-4-6", "claude-sonnet-4-6", "claude-opus-5", "claude-sonnet-5")
_STATUS = {"overloaded_error": 503, "rate_limit_error": 429, "api_error": 500}
_INCOMPLETE = {"max_tokens": "max_output_tokens", "model_context_window_exceeded": "max_output_tokens",
               "refusal": "content_filter"}  # fmt: skip


class Anthropic:
    support = SUPPORT
    fetches_urls = frozenset({"input_image", "input_file"})  # Anthropic fetches URL sources itself
    signed, redacted = SIGNED, REDACTED  # the tags of replayable reasoning this upstream signed

    def build_request(self, call: Call) -> HttpRequest:
        p = call.params
        system, messages = _messages(convert.conversation(call), self.signed, self.redacted)
        if p.get("instructions"):
            system.insert(0, convert.text_of(p["instructions"]))
        body: Json = {"model": call.deployment.model, "messages": messages}
        if system:
            body["system"] = "\n\n".join(system)
        budget = _thinking(p, body)
        body["max_tokens"] = p.get("max_output_tokens") or DEFAULT_MAX_TOKENS + budget
        if budget and body["max_tokens"] <= budget:  # the budget must fit under max_tokens
            if body["max_tokens"] <= MIN_THINKING:  # no room to think: refused, not thinking quietly dropped
                raise errors.bad_request(
                    f"Claude thinks in at least {MIN_THINKING} tokens, within max_output_tokens: with reasoning"
                    f" on, give max_output_tokens above {MIN_THINKING} (got {body['max_tokens']}), or set"
                    " reasoning.effort to 'none'.",
                    param="max_output_tokens",
                )
            body["thinking"]["budget_tokens"] = body["max_tokens"] - 1
        for name in ("temperature", "top_p"):
            if p.get(name) is not None:
                body[name] = p[name]
        if user := _user(p):
            body["metadata"] = {"user_id": user}
        if p.get("prompt_cache_key") and not call.caches_prompts:  # else marked below, more precisely
            body["cache_control"] = {"type": "ephemeral"}
        if tier := p.get("service_tier"):
            body["service_tier"] = "standard_only" if tier == "default" else "auto"
        beta = _tools(p, body, call.deployment.model)
        if fmt := convert.json_format(p):
            schema = fmt.get("schema") if fmt["type"] == "json_schema" else {"type": "object"}
            body.setdefault("output_config", {})["format"] = {"type": "json_schema", "schema": schema}
        if call.stream:
            body["stream"] = True
        body.update(call.extra_body)
        prompt_cache.mark_messages(body, call)
        headers = {"content-type": "application/json", **call.deployment.auth_headers()}
        if beta:
            headers["anthropic-beta"] = beta
        headers.update(call.extra_headers)
        dep = call.deployment
        url = self.url(dep, "stream" if call.stream else "create")
        return HttpRequest("POST", url, headers, orjson.dumps(self.wire_body(body)), dep.credentials)

    def count_request(self, call: Call) -> HttpRequest:
        req = self.build_request(call)
        keep = ("model", "messages", "system", "tools", "tool_choice", "thinking")
        body = {k: v for k, v in orjson.loads(req.body or b"{}").items() if k in keep}
        body["model"] = call.deployment.model
        url = self.url(call.deployment, "count")
        return replace(req, url=url, body=orjson.dumps(self.wire_body(body, count=True)))

    def url(self, dep: Deployment, method: str) -> str:
        """Where `method` ("create", "stream" or "count") is served."""
        base = dep.api_base if dep.api_base.endswith("/v1") else dep.api_base + "/v1"
        return base + ("/messages/count_tokens" if method == "count" else "/messages")

    def wire_body(self, body: Json, *, count: bool = False) -> Json:
        """The Messages body as this endpoint takes it."""
        return body

    def parse_count(self, body: bytes) -> int:
        return int(orjson.loads(body)["input_tokens"])

    def parse_response(self, body: bytes, call: Call) -> tuple[Json, None]:
        message = orjson.loads(body)
        t = self.stream_translator(call)  # one grammar: a whole message replayed as its events
        t.feed_event({"type": "message_start", "message": {**message, "content": []}})
        for index, block in enumerate(message.get("content") or []):
            t.block_start(index, block, whole=True)
            t.block_stop()
        t.feed_event({"type": "message_delta", "delta": {"stop_reason": message.get("stop_reason")}})
        t.feed_event({"type": "message_stop"})
        assert t.response is not None
        return t.response, None

    def stream_translator(self, call: Call) -> Translator:
        return Translator(call)

    def parse_error(self, status: int, body: bytes, headers: Mapping[str, str]) -> errors.APIStatusError:
        return error_from(status, body, headers)


def error_from(status: int, body: bytes, headers: Mapping[str, str]) -> errors.APIStatusError:
    err, message = convert.error_payload(status, body)
    kind = err.get("type") or "api_error"
    keep = errors.passthrough_headers(headers)
    if too_long := convert.overflow_error(status, message, headers=keep):
        return too_long
    # 529 "overloaded" is Anthropic's own status; clients know it as 503.
    code = "overloaded" if kind == "overloaded_error" else kind
    return errors.status_error(_STATUS.get(kind, status) if status >= 500 else status, message, code=code,
                               type=kind, headers=keep)  # fmt: skip


# -- request -----------------------------------------------------------------------------------


def _messages(history: list[Json], signed: str = SIGNED, redacted: str = REDACTED) -> tuple[list[str], list[Json]]:
    system: list[str] = []
    messages: list[Json] = []

    def push(role: str, blocks: list[Json]) -> None:
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"] += blocks
        else:
            messages.append({"role": role, "content": blocks})

    for item in history:
        kind = item.get("type") or "message"
        if kind == "message":
            role = item.get("role", "user")
            if role in ("system", "developer"):
                system.append("".join(p.get("text", "") for p in convert.parts(item)))
            else:
                push("assistant" if role == "assistant" else "user", [_block(p) for p in convert.parts(item)])
        elif kind == "function_call":
            tool_use = {"type": "tool_use", "id": item["call_id"], "name": convert.tool_name(item),
                        "input": convert.arguments(item.get("arguments"), NAME)}  # fmt: skip
            push("assistant", [tool_use])
        elif kind == "function_call_output":
            output = item.get("output")
            content = convert.text_of(output) if not isinstance(output, list) else [_block(p) for p in output]
            push("user", [{"type": "tool_result", "tool_use_id": item["call_id"], "content": content}])
        elif kind == "reasoning":
            sig = item.get("encrypted_content") or ""
            if sig.startswith(redacted):
                push("assistant", [{"type": "redacted_thinking", "data": sig.removeprefix(redacted)}])
            elif sig.startswith(signed):
                text = "".join(s.get("text", "") for s in item.get("summary") or [])
                push("assistant", [{"type": "thinking", "thinking": text, "signature": sig.removeprefix(signed)}])
        elif kind == "computer_call":
            tool_use = {"type": "tool_use", "id": item["call_id"], "name": "computer",
                        "input": computer.to_anthropic(item.get("action") or {})}  # fmt: skip
            push("assistant", [tool_use])
        elif kind == "computer_call_output":
            shot = item.get("output") or {}
            content = [_block({"type": "input_image", "image_url": shot["image_url"]})] if shot.get("image_url") else []
            push("user", [{"type": "tool_result", "tool_use_id": item["call_id"], "content": content}])
        elif kind == "web_search_call":
            continue  # a record of a search Anthropic ran itself; its findings live in the text
        else:
            raise convert.unsupported_input(kind, NAME)
    return system, messages


def _block(part: Json) -> Json:
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        return {"type": "text", "text": part.get("text", "")}
    if kind == "refusal":
        return {"type": "text", "text": part.get("refusal", "")}
    if kind == "input_image" and part.get("image_url"):
        return {"type": "image", "source": _source(part["image_url"])}
    if kind == "input_file" and (part.get("file_data") or part.get("file_url")):
        return {"type": "document", "source": _source(part.get("file_data") or part["file_url"])}
    raise convert.unsupported_input(f"content part '{kind}'", NAME)


def _source(url: str) -> Json:
    if decoded := convert.data_url(url):
        return {"type": "base64", "media_type": decoded[0], "data": decoded[1]}
    return {"type": "url", "url": url}


def _thinking(p: Json, body: Json) -> int:
    reasoning = p.get("reasoning") or {}
    effort = reasoning.get("effort") or ("medium" if reasoning.get("summary") else None)
    if effort is None:
        return 0
    if effort == "none":
        body["thinking"] = {"type": "disabled"}
        return 0
    budget = EFFORT_BUDGET.get(effort, EFFORT_BUDGET["medium"])
    body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    return budget


def _tools(p: Json, body: Json, model: str) -> str | None:
    """Map tools and tool_choice into `body`; return the beta header the tools need."""
    tools, beta = [], None
    for tool in p.get("tools") or []:
        if tool["type"] == "function":
            spec = {"name": tool["name"], "input_schema": tool.get("parameters") or {"type": "object"}}
            if tool.get("description"):
                spec["description"] = tool["description"]
            if tool.get("strict") is not None:
                spec["strict"] = tool["strict"]
            tools.append(spec)
        elif tool["type"] == "computer_use_preview":
            version, beta = COMPUTER["new" if model.startswith(_NEW_COMPUTER) else "old"]
            tools.append({"type": version, "name": "computer", "display_width_px": tool["display_width"],
                          "display_height_px": tool["display_height"]})  # fmt: skip
        else:
            tools.append(web_search.anthropic_tool(tool))
    if tools:
        body["tools"] = tools
    choice = p.get("tool_choice")
    mapped: Json | None = None
    if choice in ("auto", "required", "none"):
        mapped = {"type": {"auto": "auto", "required": "any", "none": "none"}[choice]}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        mapped = {"type": "tool", "name": choice["name"]}
    if p.get("parallel_tool_calls") is False and tools and (mapped or {}).get("type") != "none":
        mapped = mapped or {"type": "auto"}
        mapped["disable_parallel_tool_use"] = True
    if mapped and (tools or mapped["type"] == "none"):
        body["tool_choice"] = mapped
    return beta


# -- response and stream -----------------------------------------------------------------------


@dataclass(slots=True)
class _Block:
    kind: str
    args: list[str] = field(default_factory=list)
    name: str = ""
    id: str = ""
    start: int = 0  # where a text block begins in the output text, for its citations
    citations: list[Json] = field(default_factory=list)


class Translator(BuilderTranslator):
    """Anthropic stream events (or a whole message, replayed as events) -> Responses events."""

    signed, redacted = SIGNED, REDACTED

    def __init__(self, call: Call) -> None:
        super().__init__(call)
        self._block: _Block | None = None
        self._usage: Json = {}
        self._stop: str | None = None
        self._searches: dict[str, str] = {}  # server_tool_use id -> its query, until its result
        self._computer = any(t.get("type") == "computer_use_preview" for t in call.params.get("tools") or [])

    def feed(self, frame: Frame) -> list[StreamEvent]:
        return self.feed_event(orjson.loads(frame.data))

    def feed_frames(self, frames: list[Frame]) -> Iterator[StreamEvent]:
        """`feed` over a chunk's frames, for a consumer that writes SSE itself (`Call.sse_runs`):
        a text delta of the open text goes straight to its event's bytes, each stretch of them
        one Run; every other frame goes through `feed` (and `[DONE]` ends it, as `translate` does)."""
        wire: list[bytes] = []
        chars = 0
        text_wire = self.builder.text_wire
        for frame in frames:
            event: Any = _UNREAD
            if frame.event == "content_block_delta":
                try:
                    event = orjson.loads(frame.data)
                except orjson.JSONDecodeError:
                    event = _UNREAD  # `feed` below fails the stream, once the deltas before went out
                delta = event.get("delta") if type(event) is dict else None
                text = delta.get("text") if type(delta) is dict and delta.get("type") == "text_delta" else None
                if type(text) is str and (sse := text_wire(text)) is not None:
                    wire.append(sse)
                    chars += len(text)
                    continue
            if wire:  # out before a frame that may fail the stream
                yield Run(b"".join(wire), len(wire), chars / CHARS_PER_TOKEN)
                wire, chars = [], 0
            if event is not _UNREAD:
                yield from self.feed_event(event)
            else:
                yield from self.finish() if frame.data == b"[DONE]" else self.feed(frame)
        if wire:
            yield Run(b"".join(wire), len(wire), chars / CHARS_PER_TOKEN)

    def feed_event(self, event: Json) -> list[StreamEvent]:
        kind = event.get("type")
        if kind == "message_start":
            self._usage = dict(event["message"].get("usage") or {})
            return self.begin()
        if kind == "content_block_start":
            return self.block_start(event["index"], event["content_block"])
        if kind == "content_block_delta":
            return self._delta(event["delta"])
        if kind == "content_block_stop":
            return self.block_stop()
        if kind == "message_delta":
            self._stop = (event.get("delta") or {}).get("stop_reason") or self._stop
            self._usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
            return []
        if kind == "message_stop":
            return self.end(usage=self._usage_out(), incomplete_reason=_INCOMPLETE.get(self._stop or ""))
        if kind == "error":
            err = event.get("error") or {}
            return self.fail(err.get("message") or "The upstream stream failed.", err.get("type") or "server_error")
        return []  # ping, and event types newer than this adapter

    def block_start(self, index: int, block: Json, *, whole: bool = False) -> list[StreamEvent]:
        kind = block.get("type", "")
        b = self.builder
        self._block = _Block(kind, id=block.get("id", ""), name=block.get("name", ""))
        if kind == "text":
            self._block.start, self._block.citations = len(b.open_text()), list(block.get("citations") or [])
            return b.text(block["text"]) if block.get("text") else []
        if kind == "web_search_tool_result":
            query = self._searches.pop(block.get("tool_use_id", ""), "")
            action, status = web_search.anthropic_result(query, block.get("content"))
            return b.web_search(action, status)
        if kind == "thinking":
            out = b.reasoning(block["thinking"]) if block.get("thinking") else []
            return out + (b.reasoning_signature(self.signed + block["signature"]) if block.get("signature") else [])
        if kind == "redacted_thinking":
            return b.reasoning_signature(self.redacted + block.get("data", ""))
        if kind == "tool_use" and block.get("name") == "computer" and self._computer:
            self._block.kind = "computer"
            if block.get("input"):
                self._block.args.append(orjson.dumps(block["input"]).decode())
            return []
        if kind == "tool_use":
            out = b.function_call(block["id"], block["name"])
            if whole or block.get("input"):
                self._block.args.append(orjson.dumps(block.get("input") or {}).decode())
                out += b.function_arguments(self._block.args[-1])
            return out
        if kind == "server_tool_use" and block.get("input"):
            self._block.args.append(orjson.dumps(block["input"]).decode())
        return []

    def _delta(self, delta: Json) -> list[StreamEvent]:
        kind = delta.get("type")
        if kind == "text_delta":
            return self.builder.text(_text(delta["text"]))
        if kind == "thinking_delta":
            return self.builder.reasoning(_text(delta["thinking"]))
        if kind == "citations_delta" and self._block is not None:
            self._block.citations.append(delta.get("citation") or {})
            return []
        if kind == "signature_delta":
            return self.builder.reasoning_signature(self.signed + delta["signature"])
        if kind == "input_json_delta" and self._block is not None:
            self._block.args.append(delta.get("partial_json", ""))
            if self._block.kind == "tool_use" and delta.get("partial_json"):
                return self.builder.function_arguments(delta["partial_json"])
        return []

    def block_stop(self) -> list[StreamEvent]:
        block, self._block = self._block, None
        if block is None:
            return []
        if block.kind == "tool_use" and not "".join(block.args):
            return self.builder.function_arguments("{}")  # OpenAI never sends empty arguments
        if block.kind == "computer":
            action = computer.from_anthropic(convert.arguments("".join(block.args) or "{}", NAME))
            return self.builder.item({"type": "computer_call", "call_id": block.id, "action": action,
                                      "pending_safety_checks": [], "status": "completed"})  # fmt: skip
        if block.kind == "server_tool_use" and block.name == "web_search":
            self._searches[block.id] = str(convert.arguments("".join(block.args) or "{}", NAME).get("query", ""))
        if block.kind == "text" and block.citations:
            end, out = len(self.builder.open_text()), []
            for c in block.citations:
                if c.get("type") == "web_search_result_location" and c.get("url"):
                    out += self.builder.annotation(web_search.url_citation(c["url"], c.get("title"), block.start, end))
            return out
        return []

    def finish(self) -> list[StreamEvent]:
        if self.response is not None:
            return []
        return self.fail("The upstream closed the stream before the message finished.")

    def _usage_out(self) -> Json:
        u = self._usage
        cached, written = u.get("cache_read_input_tokens") or 0, u.get("cache_creation_input_tokens") or 0
        prompt = (u.get("input_tokens") or 0) + cached + written  # Anthropic's input_tokens excludes both
        return usage(prompt, u.get("output_tokens") or 0, cached=cached, written=written)


def _user(p: Json) -> str | None:
    """`user` and `safety_identifier` share Anthropic's one `metadata.user_id`: two different
    values cannot both be honoured, and neither is dropped silently."""
    user, safety = p.get("user"), p.get("safety_identifier")
    if user and safety and user != safety:
        raise errors.bad_request(
            f"'user' and 'safety_identifier' both become metadata.user_id on provider '{NAME}'. Send one.",
            param="safety_identifier",
            code="unsupported_parameter",
        )
    return safety or user


_UNREAD = object()  # a frame not parsed yet


def _text(value: object) -> str:
    """A delta's text, which must be one (else the frame is not Anthropic's)."""
    if not isinstance(value, str):
        raise TypeError(f"a delta's text is {type(value).__name__}, not a string")
    return value
