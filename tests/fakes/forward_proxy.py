"""A forward HTTP proxy, as a corporate egress proxy behaves: CONNECT tunnels, and plain-http
requests in absolute form (`POST http://host:port/path`), each checked for the credentials it
wants (407 without them). It records every request head it was sent.

With `terminate` (a server TLS context), a tunnel's TLS ends at the proxy and the bytes go on
in plain text to the same host and port: an https upstream made of a plain fake, for a client
that trusts the context's CA.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Seen:
    line: str  # the request line: "CONNECT host:port HTTP/1.1" or "POST http://... HTTP/1.1"
    authorization: str | None  # the Proxy-Authorization it came with


@dataclass
class ForwardProxy:
    credentials: tuple[str, str] | None = None
    terminate: ssl.SSLContext | None = None
    seen: list[Seen] = field(default_factory=list)
    server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    def url(self, with_credentials: bool = True) -> str:
        user = ""
        if self.credentials and with_credentials:
            user = f"{self.credentials[0]}:{self.credentials[1]}@"
        return f"http://{user}127.0.0.1:{self.port}"

    async def start(self) -> ForwardProxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            line, *header_lines = head.decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
            given = headers.get("proxy-authorization")
            self.seen.append(Seen(line, given))
            if self.credentials and given != _basic(*self.credentials):
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
                return
            method, target, _ = line.split(" ", 2)
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                await self._tunnel(reader, writer, host, int(port))
            else:
                await self._forward(reader, writer, head, target)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def _tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
            return
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        if self.terminate is not None:
            await writer.start_tls(self.terminate)
        await _pipe_both(reader, writer, up_reader, up_writer)

    async def _forward(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, target: str
    ) -> None:
        parts = urlsplit(target)
        up_reader, up_writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        first, rest = head.split(b"\r\n", 1)
        method = first.split(b" ", 1)[0]
        kept = b"".join(h + b"\r\n" for h in rest.split(b"\r\n") if h and not h.lower().startswith(b"proxy-"))
        up_writer.write(method + b" " + path.encode() + b" HTTP/1.1\r\n" + kept + b"\r\n")
        await _pipe_both(reader, writer, up_reader, up_writer)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def _pipe_both(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        with contextlib.suppress(Exception):
            dst.close()

    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


class ThreadedForwardProxy:
    """A ForwardProxy on an event loop of its own, in a thread: for a test whose client is
    another process (a proxy under test)."""

    def __init__(self, proxy: ForwardProxy) -> None:
        self.proxy = proxy
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> ForwardProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.proxy.start(), self._loop).result(5)
        return self.proxy

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.proxy.stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
