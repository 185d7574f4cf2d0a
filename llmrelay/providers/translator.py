"""What every translating stream shares: one ResponseBuilder, started once, and the final
Response kept for the store once a terminal event went out."""

from __future__ import annotations

from typing import Any

from ..streaming.builder import ResponseBuilder
from ..streaming.events import StreamEvent
from .base import Call, response_skeleton

Json = dict[str, Any]


class BuilderTranslator:
    def __init__(self, call: Call) -> None:
        self.builder = ResponseBuilder(response_skeleton(call), call.new_id, call.namespaces)
        self.response: Json | None = None
        self.upstream_id: str | None = None  # translated upstreams keep no state llmrelay uses
        self._started = False

    def begin(self) -> list[StreamEvent]:
        """`response.created` and `response.in_progress`, the first time only."""
        if self._started:
            return []
        self._started = True
        return self.builder.start()

    def end(self, *, usage: Json, incomplete_reason: str | None = None) -> list[StreamEvent]:
        if self.response is not None:
            return []
        out = self.begin() + self.builder.finish(usage=usage, incomplete_reason=incomplete_reason)
        self.response = self.builder.response
        return out

    def fail(self, message: str, code: str = "server_error") -> list[StreamEvent]:
        if self.response is not None:
            return []  # a stream ends once: an upstream error after its end changes nothing sent
        out = self.begin() + self.builder.fail(message, code)
        self.response = self.builder.response
        return out
