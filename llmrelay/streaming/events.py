"""StreamEvent: one Responses stream event, as parsed JSON or raw bytes, whichever is at hand.

Native upstreams hand us bytes that the proxy forwards untouched; translators build dicts.
Each side converts lazily, so the hot path never parses what it only forwards.
"""

from __future__ import annotations

from typing import Any

import orjson

from .sse import encode

RUN = "llmrelay.run"  # a Run's type: several events in one piece
CHARS_PER_TOKEN = 4  # what a streamed delta counts for when a stream ends without its usage
TERMINAL = frozenset({"response.completed", "response.failed", "response.incomplete", "error"})
LIFECYCLE = frozenset(
    {
        "response.created",
        "response.in_progress",
        "response.queued",
        "response.completed",
        "response.failed",
        "response.incomplete",
    }
)


class StreamEvent:
    __slots__ = ("_data", "_raw", "type")
    events = 1  # how many stream events this is (a Run: several)

    def __init__(self, type: str, data: dict[str, Any] | None = None, raw: bytes | None = None):
        self.type = type
        self._data = data
        self._raw = raw

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            self._data = orjson.loads(self._raw or b"{}")
        return self._data

    @property
    def parsed(self) -> dict[str, Any] | None:
        """The event's dict if it is at hand already, without parsing forwarded bytes."""
        return self._data

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = orjson.dumps(self._data)
        return self._raw

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL

    def sse(self) -> bytes:
        """The event as Server-Sent Events write it."""
        return encode(self.type, self.raw)

    def __repr__(self) -> str:
        return f"StreamEvent({self.type!r})"


class Run(StreamEvent):
    """Stream events a consumer that writes SSE itself (`Call.sse_runs`) gets in one piece: the
    SSE bytes of a stretch of events before a terminal one (or a native stream's plain frames,
    as they came), how many events they are, and the output tokens their deltas count for
    (gateway/produced.py)."""

    __slots__ = ("events", "tokens")

    def __init__(self, wire: bytes, events: int, tokens: float) -> None:
        super().__init__(RUN, raw=wire)
        self.events = events
        self.tokens = tokens

    def sse(self) -> bytes:
        return self._raw  # type: ignore[return-value]
