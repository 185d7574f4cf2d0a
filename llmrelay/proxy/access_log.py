"""The access log: one line per HTTP request, written once the response is sent.

Method, path, status, model, latency and the client's address; never a header (so never a
key) and never a body beyond the model name the route read anyway.
"""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger("llmrelay.access")
MODEL = "llmrelay.model"  # the scope key a route stores the request's model under

Scope = dict[str, Any]


class AccessLog:
    """Pure ASGI middleware, installed only when the access log is on."""

    def __init__(self, app: Any) -> None:
        self.app = app
        log.setLevel(logging.INFO)
        if not log.hasHandlers():  # embedded without logging set up: still print the lines
            log.addHandler(logging.StreamHandler())

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client gets if the app fails before answering

        async def send_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            client = scope.get("client")
            log.info(
                "%s %s %s %d model=%s %.1fms",
                f"{client[0]}:{client[1]}" if client else "-",
                scope["method"],
                _printable(scope["path"]),
                status,
                _printable(str(scope.get(MODEL) or "-")[:200]),
                (time.perf_counter() - start) * 1000,
            )


def _printable(text: str) -> str:
    """A client-chosen string, escaped so it cannot forge or break log lines."""
    return text if text.isprintable() else text.encode("unicode_escape").decode()
