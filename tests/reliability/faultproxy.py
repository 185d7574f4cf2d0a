"""A fault-injecting TCP proxy between the gateway and a fake upstream.

Each `FaultProxy` listens on its own port and treats every connection the same way (its
`mode`), so a gateway deployment pointed at it meets one fault, whatever its connection pool
does. Modes:

- ``pass``: forward both ways untouched
- ``refuse``: nothing listens on the port (connection refused)
- ``hang_headers``: read the request, never answer, until the client goes away
- ``hang_mid``: forward the upstream's head and the first part of its body, then stall
- ``reset_mid``: forward the head and the first part of the body, then reset the
  connection (RST, via SO_LINGER 0)
- ``garbage``: answer the request with bytes that are not HTTP, then close
- ``drip``: forward the upstream's reply a few bytes at a time

"The first part of the body" is the first SSE event of a stream (`text/event-stream`), or
32 bytes of any other body. The proxies run on one event loop in a thread of their own, so
synchronous tests drive them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import threading
from collections.abc import Iterator

from tests.fakes.process import free_port

MODES = ("pass", "refuse", "hang_headers", "hang_mid", "reset_mid", "garbage", "drip")
DRIP_BYTES = 24
DRIP_INTERVAL = 0.002  # seconds between drips: far below any read timeout
FIRST_BODY_BYTES = 32


class FaultProxy:
    def __init__(self, loop: FaultLoop, upstream_port: int, mode: str) -> None:
        assert mode in MODES, mode
        self.loop, self.upstream_port, self.mode = loop, upstream_port, mode
        self.port = free_port()
        self.connections = 0
        self.faults = 0  # connections the fault was applied to
        self._server: asyncio.Server | None = None

    async def _start(self) -> None:
        if self.mode != "refuse":
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            if self.mode == "hang_headers":
                await reader.readuntil(b"\r\n\r\n")
                self.faults += 1
                while await reader.read(65536):  # until the client goes away
                    pass
            elif self.mode == "garbage":
                await reader.readuntil(b"\r\n\r\n")
                self.faults += 1
                writer.write(os.urandom(512).replace(b"HTTP", b"PTTH"))
                await writer.drain()
            else:
                await self._forward(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()  # no await in here: a handler closed when its loop ends must not wait
        with contextlib.suppress(Exception):
            await writer.wait_closed()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        upward = asyncio.create_task(_pipe(reader, up_writer))
        try:
            if await self._downward(up_reader, writer):
                await upward  # hang_mid: stall until the client goes away
        finally:
            upward.cancel()
            up_writer.close()

    async def _downward(self, up: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Forward the upstream's reply with the fault applied; True when the fault is to stall."""
        seen = b""  # the reply so far, until the fault's point is found
        while chunk := await up.read(65536):
            if self.mode == "drip":
                for i in range(0, len(chunk), DRIP_BYTES):
                    writer.write(chunk[i : i + DRIP_BYTES])
                    await writer.drain()
                    await asyncio.sleep(DRIP_INTERVAL)
                continue
            if self.mode == "pass":
                writer.write(chunk)
                await writer.drain()
                continue
            seen += chunk
            cut = _fault_point(seen)
            if cut is None:
                continue
            writer.write(seen[:cut])
            await writer.drain()
            self.faults += 1
            if self.mode == "reset_mid":
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return False
            return True
        if seen:  # the reply ended before the fault's point: it passes whole
            writer.write(seen)
            await writer.drain()
        return False


def _fault_point(reply: bytes) -> int | None:
    """Where the fault strikes in a reply read so far: after its first SSE event, or after the
    first bytes of any other body; None while that point has not arrived."""
    head_end = reply.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    body = head_end + 4
    if b"text/event-stream" in reply[:head_end].lower():
        event_end = reply.find(b"\n\n", body)
        return None if event_end < 0 else event_end + 2
    return body + FIRST_BODY_BYTES if len(reply) >= body + FIRST_BODY_BYTES else None


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, asyncio.CancelledError):
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()


class FaultLoop:
    """An event loop in a daemon thread that runs any number of fault proxies."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="faultproxy")
        self.thread.start()
        self.proxies: list[FaultProxy] = []

    def proxy(self, upstream_port: int, mode: str) -> FaultProxy:
        proxy = FaultProxy(self, upstream_port, mode)
        asyncio.run_coroutine_threadsafe(proxy._start(), self.loop).result(5)
        self.proxies.append(proxy)
        return proxy

    async def _shutdown(self) -> None:
        for proxy in self.proxies:
            await proxy._stop()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@contextlib.contextmanager
def fault_loop() -> Iterator[FaultLoop]:
    loop = FaultLoop()
    try:
        yield loop
    finally:
        loop.close()
