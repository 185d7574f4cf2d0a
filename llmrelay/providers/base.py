"""The adapter interface and the resolved call it translates.

An adapter is pure: it builds the upstream request, parses the upstream reply, and turns
upstream stream frames into Responses events. HTTP, retries and storage live in the core.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .. import errors, items
from ..streaming.events import StreamEvent
from ..streaming.sse import Frame
from ..transport import HttpRequest
from .registry import Deployment

Json = dict[str, Any]


@dataclass(slots=True)
class Call:
    """One create request, resolved against the store and the router."""

    id: str  # the response id llmrelay returns
    params: Json  # the Responses request, llmrelay's own options removed
    deployment: Deployment
    input_items: list[Json]  # this turn's input, normalised, for the store
    created_at: int
    new_id: Callable[[str], str]
    owner: str | None = None
    context: list[Json] = field(default_factory=list)  # replayed history, oldest first
    upstream_previous_id: str | None = None  # continue natively on the upstream's own state
    timeout: float | None = None  # a whole reply's; None: the transport's default
    stream_timeout: float | None = None  # a stream's longest silence; None: the transport's default
    retries: int = 0
    extra_headers: dict[str, str] = field(default_factory=dict)
    extra_body: Json = field(default_factory=dict)
    extra_query: dict[str, str] = field(default_factory=dict)
    job: bool = False  # run by llmrelay in the background: final writes must not beat a cancel
    conversation_id: str | None = None  # a conversation in llmrelay's store this turn belongs to
    # A WebSocket connection's own memory: where its store=false responses live, for continuation.
    memory: dict[str, Any] | None = None
    namespaces: dict[str, tuple[str, str]] = field(default_factory=dict)  # flat tool name -> (namespace, name)
    failover: Any = None  # the router's retries and fallbacks for this call, once it failed
    started: tuple[str, float] | None = None  # (deployment id, monotonic time) while a strategy measures it
    mcp: Any = None  # the MCP tools llmrelay runs for this call (an mcp.Plan), when the upstream cannot
    # What the gateway stages know of this call (the caller's key, its cost); the caller's dict.
    meta: dict[str, Any] = field(default_factory=dict)
    # Automatic prompt caching (prompt_cache.py): the caller's choice; None: the deployment's
    # `prompt_caching`, else the relay's default.
    prompt_caching: bool | None = None
    prompt_caching_default: bool = True
    # The consumer only writes the events out as SSE (StreamEvent.sse()): they may then come in
    # Runs (streaming/events.py), each stretch before a terminal event in one piece.
    sse_runs: bool = False

    @property
    def stream(self) -> bool:
        return bool(self.params.get("stream"))

    @property
    def caches_prompts(self) -> bool:
        """Whether llmrelay marks the stable prefix for a provider that caches only where marked."""
        for choice in (self.prompt_caching, self.deployment.extra.get("prompt_caching")):
            if choice is not None:
                return bool(choice)
        return self.prompt_caching_default

    def drop_oldest_turns(self) -> bool:
        """`truncation: "auto"`: drop the oldest half of the conversation's turns, never the
        system/developer messages nor the last user turn. False when nothing can go."""
        history = self.context + items.as_items(self.params.get("input") or [])
        is_user = [i.get("type", "message") == "message" and i.get("role") == "user" for i in history]
        starts = [n for n, user in enumerate(is_user) if user]  # a turn starts at a user message
        if len(starts) < 2:
            return False
        cut = starts[max(1, len(starts) // 2)]  # keep at least the last user turn
        kept = [i for n, i in enumerate(history) if n >= cut or i.get("role") in ("system", "developer")]
        self.context, self.params["input"] = [], kept
        return True


class StreamTranslator(Protocol):
    """Upstream frames in, Responses events out. `response` is set once a terminal event passed."""

    response: Json | None
    upstream_id: str | None

    def feed(self, frame: Frame) -> list[StreamEvent]: ...

    def finish(self) -> list[StreamEvent]:
        """The upstream closed: events that end the stream properly if it had not ended."""
        ...

    def fail(self, message: str) -> list[StreamEvent]:
        """The connection broke mid-stream."""
        ...


class Adapter(Protocol):
    def build_request(self, call: Call) -> HttpRequest: ...

    def parse_response(self, body: bytes, call: Call) -> tuple[Json, str | None]:
        """(the Response object, the upstream's own id if it keeps state)."""
        ...

    def stream_translator(self, call: Call) -> StreamTranslator: ...

    def parse_error(self, status: int, body: bytes, headers: Mapping[str, str]) -> errors.APIStatusError: ...


def _given(params: Json, key: str, default: Any) -> Any:
    """A request parameter echoed into the Response: one sent as null reads as its default, as
    OpenAI echoes it (the Response type has no null for some of them: parallel_tool_calls)."""
    value = params.get(key)
    return default if value is None else value


def response_skeleton(call: Call) -> Json:
    """The Response object a translated call starts from, echoing the request as OpenAI does."""
    p = call.params
    return {
        "id": call.id,
        "object": "response",
        "created_at": call.created_at,
        "status": "in_progress",
        "background": bool(p.get("background", False)),
        "error": None,
        "incomplete_details": None,
        "instructions": p.get("instructions"),
        "max_output_tokens": p.get("max_output_tokens"),
        "max_tool_calls": p.get("max_tool_calls"),
        "model": call.deployment.model,
        "output": [],
        "parallel_tool_calls": _given(p, "parallel_tool_calls", True),
        "previous_response_id": p.get("previous_response_id"),
        "reasoning": p.get("reasoning") or {"effort": None, "summary": None},
        "service_tier": p.get("service_tier") or "default",
        "store": _given(p, "store", True),
        "temperature": _given(p, "temperature", 1.0),
        "text": p.get("text") or {"format": {"type": "text"}},
        "tool_choice": _given(p, "tool_choice", "auto"),
        "tools": call.mcp.echo if call.mcp is not None else p.get("tools") or [],  # MCP secrets left out
        "top_logprobs": _given(p, "top_logprobs", 0),
        "top_p": _given(p, "top_p", 1.0),
        "truncation": p.get("truncation") or "disabled",
        "usage": None,
        "user": p.get("user"),
        "metadata": p.get("metadata") or {},
        "conversation": {"id": call.conversation_id} if call.conversation_id else None,
    }


def usage(input_tokens: int, output_tokens: int, *, cached: int = 0, written: int = 0, reasoning: int = 0) -> Json:
    """Responses usage. `input_tokens` counts every input token, cached (`cached` read from the
    prompt cache) and written to it (`written`, OpenAI's `cache_write_tokens`) included, as
    OpenAI counts them."""
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": input_tokens + output_tokens,
    }
