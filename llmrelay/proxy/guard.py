"""Bounds on a request's head (request line and headers), below the ASGI app.

uvicorn's httptools protocol bounds neither how long the head may take nor how large it may
grow: a client that trickles it a byte at a time (slowloris) or never ends it holds a
connection, and memory, for as long as it likes. This protocol answers such a client 408
(too slow) or 431 (too large) and closes the connection. A head that arrives in one read,
the usual case, costs no timer.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEADER_BYTES = 64 * 1024
_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class GuardedHttpTools(HttpToolsProtocol):
    header_timeout: float = 10.0
    max_header_bytes: int = MAX_HEADER_BYTES

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._in_head = True
        self._head_bytes = 0
        # a connection that sends nothing at all is held to the same deadline
        self._head_timer: asyncio.TimerHandle | None = self.loop.call_later(self.header_timeout, self._too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._in_head or self.transport.is_closing():
            return
        self._head_bytes += len(data)  # still no end of the head after this read
        if self._head_bytes > self.max_header_bytes:
            self._refuse(431)
        elif self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._too_slow)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._stop_timer()
        super().on_headers_complete()

    def _stop_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _too_slow(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            self._refuse(408)

    def _refuse(self, status: int) -> None:
        self._stop_timer()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-length: 0\r\nconnection: close\r\n\r\n" % (status, _REASONS[status])
        )
        self.transport.close()


def guarded_protocol(*, header_timeout: float, max_header_bytes: int = MAX_HEADER_BYTES) -> type[GuardedHttpTools]:
    """The protocol class for uvicorn's `http=`, with these bounds."""
    bounds = {"header_timeout": header_timeout, "max_header_bytes": max_header_bytes}
    return type("GuardedHttpTools", (GuardedHttpTools,), bounds)
