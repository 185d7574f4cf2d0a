"""`x-request-id` on every HTTP response: the client's when it sent a usable one (at most
MAX_LENGTH characters of a safe set), else a new one. The id is also left in the scope for
the route (telemetry's records carry it), with the W3C trace headers when traces are on.
"""

from __future__ import annotations

import re
from typing import Any

from ..ids import token_hex

REQUEST_ID = "llmrelay.request_id"  # scope keys
TRACE = "llmrelay.trace"
MAX_LENGTH = 128
_SAFE = re.compile(rb"[A-Za-z0-9._:/=+@-]{1,%d}" % MAX_LENGTH)
_TRACE_HEADERS = (b"traceparent", b"tracestate")


class RequestId:
    """Pure ASGI middleware; the proxy always installs it."""

    def __init__(self, app: Any, *, traces: bool = False) -> None:
        self.app = app
        self.traces = traces

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = None
        trace: dict[str, str] | None = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                given = value
            elif self.traces and name in _TRACE_HEADERS:
                trace = trace or {}
                trace[name.decode()] = value.decode("latin-1")
        raw = given if given is not None and _SAFE.fullmatch(given) else token_hex(16).encode()
        scope[REQUEST_ID] = raw.decode()
        if trace is not None:
            scope[TRACE] = trace
        header = (b"x-request-id", raw)

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_id)
