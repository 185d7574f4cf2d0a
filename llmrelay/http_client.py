"""The upstream HTTP/1.1 client: keep-alive connections pooled per origin (one pool per event
loop), responses parsed by httptools (llhttp, the parser uvicorn serves with).

aiohttp's client spends about 90 µs of CPU on each request it sends (request and response
objects, a timer per read, tracing and cookie hooks); this one about 25 (bench/http_client.py).
It does only what llmrelay asks of an upstream: no redirects, cookies or HTTP/2; an HTTP proxy
when the environment names one (http_proxy.py).
Its failures are aiohttp's exception types, so callers catch one family (`aiohttp.ClientError`,
`TimeoutError`) whichever client sent the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from . import http_proxy
from .http_proxy import Proxy

IDLE_SECONDS = 30.0  # an idle connection is closed after this long
HIGH_WATER = 1 << 18  # body bytes held unread before the socket stops being read
# Sent again once on a fresh connection when a kept-alive one turns out closed (as aiohttp does)
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_INFLATE_BITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}

Origin = tuple[str, str, int]  # scheme, host, port


class Response:
    """One upstream answer: the status and headers when they arrive, the body as it arrives."""

    __slots__ = ("_chunks", "_conn", "_done", "_error", "_inflate", "_loop", "_size", "_waiter", "headers", "status")

    def __init__(self, conn: Connection, status: int, headers: CIMultiDictProxy[str]) -> None:
        self.status = status
        self.headers = headers
        self._conn: Connection | None = conn  # None once the body is complete (or abandoned)
        self._loop = conn.loop
        self._chunks: list[bytes] = []
        self._size = 0
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._inflate: Any = None  # a zlib decompressor, for a gzip or deflate body
        encoding = headers.get("content-encoding", "identity").lower()
        if encoding != "identity":
            bits = _INFLATE_BITS.get(encoding)
            if bits is None:
                self._error = aiohttp.ClientPayloadError(f"Unsupported content-encoding {encoding!r}")
            else:
                self._inflate = zlib.decompressobj(bits)

    @property
    def content(self) -> Response:
        """The body stream, as aiohttp spells it: `resp.content.iter_any()`."""
        return self

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("content-length")
        return int(value) if value is not None and value.isdigit() else None

    async def iter_any(self) -> AsyncIterator[bytes]:
        """The body in pieces as they arrive (all that is buffered, joined, each time)."""
        while True:
            if self._chunks:
                chunks = self._chunks
                data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                self._chunks = []
                self._size = 0
                if self._conn is not None and self._conn.paused:
                    self._conn.resume()
                yield data
            elif self._error is not None:
                raise self._error
            elif self._done:
                return
            else:
                await self._wait()

    async def read(self) -> bytes:
        """The whole body."""
        while not self._done and self._error is None:
            await self._wait()
        if self._error is not None:
            raise self._error
        body = b"".join(self._chunks)
        self._chunks = []
        return body

    def release(self) -> None:
        """Done with this answer. A connection whose body was read to its end went back to the
        pool already; one still mid-body cannot be reused and is closed."""
        self.close()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.abandon()
            self._fail(aiohttp.ClientConnectionError("The response was closed"))

    def _wait(self) -> asyncio.Future[None]:
        self._waiter = waiter = self._loop.create_future()
        return waiter

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _feed(self, data: bytes) -> None:
        if self._inflate is not None:
            try:
                data = self._inflate.decompress(data)
            except zlib.error as exc:
                self._fail(aiohttp.ClientPayloadError(f"Cannot decode the body: {exc}"))
                return
            if not data:
                return
        self._chunks.append(data)
        self._size += len(data)
        if self._size > HIGH_WATER and self._conn is not None:
            self._conn.pause()
        self._wake()

    def _finish(self) -> None:
        if self._inflate is not None and self._error is None:
            if tail := self._inflate.flush():
                self._chunks.append(tail)
            if not self._inflate.eof:
                self._error = aiohttp.ClientPayloadError("The compressed body ended early")
        self._done = True
        self._conn = None
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        if not self._done and self._error is None:
            self._error = exc
        self._wake()


class Connection(asyncio.Protocol):
    """One kept-alive connection to an origin, carrying one exchange at a time."""

    def __init__(self, pool: Pool, origin: Origin) -> None:
        self.pool = pool
        self.origin = origin
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.reused = False
        self.paused = False
        self.idle_since = 0.0
        self._head: asyncio.Future[Response] | None = None  # waiting for the status and headers
        self._response: Response | None = None  # the answer whose body is arriving
        self._headers: list[tuple[str, str]] = []
        self.got_bytes = False
        self._complete = False
        self._keep = False
        self._until_eof = False  # the body has no length: it ends with the connection
        self._timeout = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._seen = 0.0

    # -- the exchange ---------------------------------------------------------------------

    def exchange(self, data: bytes, timeout: float) -> asyncio.Future[Response]:
        """Write one request; the future holds the answer once its headers are in. `timeout`
        bounds every silence of the upstream until the body is complete, not the whole of it."""
        assert self.transport is not None
        self._head = head = self.loop.create_future()
        self._headers = []
        self.got_bytes = self._complete = False
        self._timeout = timeout
        self._seen = self.loop.time()
        self._timer = self.loop.call_at(self._seen + timeout, self._check_silence)
        self.transport.write(data)
        return head

    def _check_silence(self) -> None:
        now = self.loop.time()
        if self.paused or now - self._seen < self._timeout:  # a reader that is behind is not a silent upstream
            self._timer = self.loop.call_at(max(now, self._seen) + self._timeout, self._check_silence)
            return
        self._timer = None
        self._break(aiohttp.ServerTimeoutError(f"No data from the upstream for {self._timeout:g} s"))

    def _break(self, exc: BaseException) -> None:
        """The exchange cannot go on: tell whoever waits, and drop the connection."""
        if self._head is not None and not self._head.done():
            self._head.set_exception(exc)
        elif self._response is not None:
            self._response._fail(exc)
            self._response = None
        self._drop()

    def abandon(self) -> None:
        """The reader left mid-body."""
        self._response = None
        self._drop()

    def _drop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def pause(self) -> None:
        if not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self._seen = self.loop.time()
            self.transport.resume_reading()

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._head is None and self._response is None:
            self._drop()  # bytes nobody asked for: this connection is not to be trusted again
            return
        self.got_bytes = True
        self._seen = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._break(aiohttp.ClientPayloadError(f"The upstream's reply is not valid HTTP: {exc}"))
            return
        if self._complete:
            self._complete = False
            if self._keep and not self.closed:
                if self.paused:
                    self.paused = False
                    self.transport.resume_reading()  # type: ignore[union-attr]
                self.pool.put(self)
            else:
                self._drop()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.pool.forget(self)
        head, response = self._head, self._response
        if head is not None and not head.done():
            head.set_exception(aiohttp.ServerDisconnectedError())
        elif response is not None:
            self._response = None
            if self._until_eof:
                response._finish()  # a body without a length ends where the connection does
            else:
                response._fail(aiohttp.ClientPayloadError("The upstream closed the connection mid-body"))

    # -- httptools callbacks --------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (100 Continue): the real one follows
            self._headers = []
            return
        head, self._head = self._head, None
        if head is None:  # an answer to no request: the connection is not to be trusted again
            self._keep = False
            return
        headers = CIMultiDict(self._headers)
        response = Response(self, status, CIMultiDictProxy(headers))
        self._keep = self.parser.should_keep_alive()
        self._until_eof = "content-length" not in headers and "transfer-encoding" not in headers
        self._response = response
        if not head.done():
            head.set_result(response)

    def on_body(self, body: bytes) -> None:
        if self._response is not None:
            self._response._feed(body)

    def on_message_complete(self) -> None:
        response = self._response
        if response is None:  # the end of an interim answer, or of one nobody asked for
            return
        self._response = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        response._finish()
        self._complete = True


class Pool:
    """The connections of one event loop, idle ones kept per origin (the most recent first)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.idle: dict[Origin, list[Connection]] = {}
        self.open: set[Connection] = set()
        self._sweep: asyncio.TimerHandle | None = None
        self._targets: dict[str, tuple[Origin, str, str, str | None]] = {}
        self._proxies: dict[Origin, Proxy | None] = {}  # what the environment says for each origin

    async def request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout: float, connect: float
    ) -> Response:
        origin, target, host, proxy_authorization = self._target(url)
        data = _head(method, target, host, headers, body, proxy_authorization)
        if body:
            data += body
        conn = self._take(origin)
        while True:
            if conn is None:
                conn = await self._connect(origin, connect)
            try:
                return await conn.exchange(data, timeout)
            except aiohttp.ServerDisconnectedError:
                # A kept-alive connection the upstream had closed before it read a byte
                if not conn.reused or conn.got_bytes or method not in IDEMPOTENT:
                    raise
                conn = None
            except BaseException:  # cancelled, or timed out: whatever answer comes is not read
                conn.abandon()
                raise

    def _target(self, url: str) -> tuple[Origin, str, str, str | None]:
        """(origin, request target, Host header, Proxy-Authorization for a proxied plain-http request)."""
        known = self._targets.get(url)
        if known is not None:
            return known
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise aiohttp.InvalidURL(url)
        port = parts.port or (443 if scheme == "https" else 80)
        host = parts.netloc.rpartition("@")[2]
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        origin = (scheme, parts.hostname, port)
        proxy_authorization = None
        if origin not in self._proxies:
            self._proxies[origin] = http_proxy.from_environment(scheme, parts.hostname, port)
        if (proxy := self._proxies[origin]) is not None and scheme == "http":  # asked of the proxy, in absolute form
            target = f"http://{host}{target}"
            proxy_authorization = proxy.authorization
        known = (origin, target, host, proxy_authorization)
        if len(self._targets) < 4096:  # response ids in paths make the URLs unbounded
            self._targets[url] = known
        return known

    def _take(self, origin: Origin) -> Connection | None:
        idle = self.idle.get(origin)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                conn.reused = True
                return conn
        return None

    async def _connect(self, origin: Origin, timeout: float) -> Connection:
        scheme, host, port = origin
        tls = _tls_context() if scheme == "https" else None
        proxy = self._proxies.get(origin)
        where = f"{host}:{port}" if proxy is None else f"{host}:{port} through the proxy {proxy.shown}"
        conn = Connection(self, origin)
        try:
            async with asyncio.timeout(timeout):
                if proxy is None:
                    hint = host if tls else None
                    await self.loop.create_connection(lambda: conn, host, port, ssl=tls, server_hostname=hint)
                elif tls is None:  # plain http: requests go to the proxy itself
                    await self.loop.create_connection(lambda: conn, proxy.host, proxy.port)
                else:
                    await http_proxy.tunnel(self.loop, proxy, host, port, tls, conn)
        except TimeoutError:
            raise aiohttp.ConnectionTimeoutError(f"Connecting to {where} took over {timeout:g} s") from None
        except OSError as exc:
            raise aiohttp.ClientOSError(exc.errno, f"Cannot connect to {where}: {exc}") from exc
        self.open.add(conn)
        return conn

    def put(self, conn: Connection) -> None:
        conn.idle_since = time.monotonic()
        self.idle.setdefault(conn.origin, []).append(conn)
        if self._sweep is None:
            self._sweep = self.loop.call_later(IDLE_SECONDS, self._close_idle)

    def forget(self, conn: Connection) -> None:
        self.open.discard(conn)
        idle = self.idle.get(conn.origin)
        if idle and conn in idle:
            idle.remove(conn)

    def _close_idle(self) -> None:
        self._sweep = None
        stale = time.monotonic() - IDLE_SECONDS
        for idle in self.idle.values():
            for conn in [c for c in idle if c.idle_since <= stale]:
                idle.remove(conn)
                conn._drop()
        if any(self.idle.values()):
            self._sweep = self.loop.call_later(IDLE_SECONDS, self._close_idle)

    def close(self) -> None:
        """Close every connection (the loop may be gone: nothing here awaits it)."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for conn in list(self.open):
            conn.closed = True
            if conn.transport is not None:
                with contextlib.suppress(RuntimeError):  # its loop is closed: the socket goes with the process
                    conn.transport.abort()
        self.open.clear()
        self.idle.clear()


def _head(
    method: str,
    target: str,
    host: str,
    headers: Mapping[str, str],
    body: bytes | None,
    proxy_authorization: str | None = None,
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1"]
    named = set()
    for name, value in headers.items():
        if "\n" in value or "\r" in value or "\n" in name or "\r" in name or ":" in name:
            raise ValueError(f"The header {name!r} holds a line break or a colon")
        lines.append(f"{name}: {value}")
        named.add(name.lower())
    if "host" not in named:
        lines.append(f"Host: {host}")
    if "accept-encoding" not in named:
        lines.append("Accept-Encoding: gzip, deflate")
    if proxy_authorization is not None:
        lines.append(f"Proxy-Authorization: {proxy_authorization}")
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode()


_tls: ssl.SSLContext | None = None


def _tls_context() -> ssl.SSLContext:
    global _tls
    if _tls is None:
        _tls = ssl.create_default_context()
        _tls.set_alpn_protocols(["http/1.1"])
    return _tls
