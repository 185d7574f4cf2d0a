"""The upstream HTTP/1.1 client against a raw TCP server that answers in exactly the bytes each
test writes: framing (length, chunked, until close), compression, keep-alive, the ways an
upstream breaks off, silence, and a reader slower than the upstream."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from llmrelay.http_client import HIGH_WATER, Pool
from tests.fakes.tls import trusted_https_server

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Upstream:
    """A server running `handler` on each connection; it counts connections and keeps the heads."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.heads: list[bytes] = []
        self.closed = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Upstream:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self.closed.set()

    async def head(self, reader: asyncio.StreamReader) -> bytes:
        """One request's head and body (by its content-length)."""
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                await reader.readexactly(int(line.split(b":")[1]))
        return head


def answering(*replies: bytes, then: Callable[[], Awaitable[None]] | None = None) -> Callable[[Upstream], Handler]:
    """A handler that reads a request and writes each reply in turn, on one connection."""

    def make(up: Upstream) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            for reply in replies:
                await up.head(reader)
                writer.write(reply)
                await writer.drain()
            if then is not None:
                await then()
            else:
                await reader.read()  # until the client closes

        return handler

    return make


async def serve(make: Callable[[Upstream], Handler]) -> Upstream:
    up = Upstream(lambda r, w: handler(r, w))
    handler = make(up)
    return await up.__aenter__()


@pytest.fixture
async def pool() -> AsyncIterator[Pool]:
    p = Pool(asyncio.get_running_loop())
    yield p
    p.close()


def ok(body: bytes, *headers: str) -> bytes:
    extra = "".join(f"{h}\r\n" for h in headers)
    return f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\n{extra}\r\n".encode() + body


async def test_two_requests_share_one_kept_alive_connection(pool: Pool) -> None:
    up = await serve(answering(ok(b'{"a":1}', "content-type: application/json"), ok(b"second")))
    first = await pool.request("POST", up.url + "/v1/x?y=1", {"authorization": "Bearer k"}, b"{}", 5, 5)
    assert (first.status, first.headers["Content-Type"], await first.read()) == (200, "application/json", b'{"a":1}')
    second = await pool.request("GET", up.url + "/v1/z", {}, None, 5, 5)
    assert await second.read() == b"second"
    assert up.connections == 1
    post, get = up.heads
    assert post.startswith(b"POST /v1/x?y=1 HTTP/1.1\r\n")
    assert b"\r\nauthorization: Bearer k\r\n" in post and b"\r\nContent-Length: 2\r\n" in post
    assert b"\r\nHost: 127.0.0.1:" in post and b"\r\nAccept-Encoding: gzip, deflate\r\n" in post
    assert get.startswith(b"GET /v1/z HTTP/1.1\r\n") and b"Content-Length" not in get
    await up.__aexit__()


async def test_a_chunked_stream_arrives_piece_by_piece(pool: Pool) -> None:
    sent = asyncio.Event()

    def make(up: Upstream) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await up.head(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/event-stream\r\n\r\n")
            for piece in (b"data: 1\n\n", b"data: 2\n\n"):
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                await writer.drain()
                await sent.wait()
                sent.clear()
            writer.write(b"0\r\n\r\n")
            await reader.read()

        return handler

    up = await serve(make)
    resp = await pool.request("POST", up.url + "/s", {}, b"{}", 5, 5)
    got = []
    async for chunk in resp.content.iter_any():
        got.append(chunk)
        sent.set()
    assert got == [b"data: 1\n\n", b"data: 2\n\n"]
    assert sum(len(v) for v in pool.idle.values()) == 1  # back in the pool once its end arrived
    await up.__aexit__()


async def test_gzip_and_deflate_bodies_are_decoded(pool: Pool) -> None:
    import zlib

    body = b'{"text": "' + b"x" * 5000 + b'"}'
    up = await serve(answering(ok(gzip.compress(body), "content-encoding: gzip"),
                               ok(zlib.compress(body), "content-encoding: deflate")))  # fmt: skip
    assert await (await pool.request("GET", up.url, {}, None, 5, 5)).read() == body
    assert await (await pool.request("GET", up.url, {}, None, 5, 5)).read() == body
    await up.__aexit__()


async def test_a_body_without_a_length_ends_with_the_connection(pool: Pool) -> None:
    up = await serve(answering(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it", then=lambda: asyncio.sleep(0)))
    resp = await pool.request("GET", up.url, {}, None, 5, 5)
    assert await resp.read() == b"all of it"
    assert not any(pool.idle.values())
    await up.__aexit__()


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhalf",  # announced more than it sent
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n",  # no last chunk
        b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\ncontent-encoding: gzip\r\n\r\nnot gzip!!",
    ],
)
async def test_a_body_broken_off_is_a_payload_error(pool: Pool, reply: bytes) -> None:
    up = await serve(answering(reply, then=lambda: asyncio.sleep(0)))
    resp = await pool.request("GET", up.url, {}, None, 5, 5)
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()
    await up.__aexit__()


async def test_a_reply_that_is_not_http_is_an_error(pool: Pool) -> None:
    up = await serve(answering(b"SSH-2.0-OpenSSH\r\n\r\n", then=lambda: asyncio.sleep(0)))
    with pytest.raises(aiohttp.ClientError):
        await pool.request("GET", up.url, {}, None, 5, 5)
    await up.__aexit__()


async def test_a_connection_closed_before_the_headers(pool: Pool) -> None:
    up = await serve(answering(b"", then=lambda: asyncio.sleep(0)))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await pool.request("POST", up.url, {}, b"{}", 5, 5)
    await up.__aexit__()


async def test_a_kept_alive_connection_closed_unanswered_is_retried_for_get_only(pool: Pool) -> None:
    """An upstream closing an idle connection as the next request arrives: a GET goes again on a
    fresh connection; a POST, which the upstream might have acted on, fails (as aiohttp's does)."""

    def make(up: Upstream) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await up.head(reader)
            writer.write(ok(b"one"))
            await writer.drain()
            await up.head(reader)  # read, then closed unanswered

        return handler

    up = await serve(make)
    assert await (await pool.request("GET", up.url, {}, None, 5, 5)).read() == b"one"
    assert await (await pool.request("GET", up.url, {}, None, 5, 5)).read() == b"one"
    assert up.connections == 2
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await pool.request("POST", up.url, {}, b"{}", 5, 5)
    assert up.connections == 2
    await up.__aexit__()


async def test_silence_longer_than_the_timeout(pool: Pool) -> None:
    async def quiet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhal")
        await reader.read()

    up = await Upstream(quiet).__aenter__()
    resp = await pool.request("GET", up.url, {}, None, 0.3, 5)
    with pytest.raises(TimeoutError):
        await resp.read()
    await asyncio.wait_for(up.closed.wait(), 2)  # the connection is dropped, not pooled

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    up2 = await Upstream(silent).__aenter__()
    with pytest.raises(aiohttp.ServerTimeoutError):
        await pool.request("GET", up2.url, {}, None, 0.2, 5)
    await up.__aexit__()
    await up2.__aexit__()


async def test_a_steady_trickle_is_not_silence(pool: Pool) -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\n")
        for b in b"abcdef":
            await asyncio.sleep(0.1)
            writer.write(bytes([b]))
        await reader.read()

    up = await Upstream(trickle).__aenter__()
    resp = await pool.request("GET", up.url, {}, None, 0.45, 5)  # 0.6 s in all, never 0.45 s silent
    assert await resp.read() == b"abcdef"
    await up.__aexit__()


async def test_nothing_listening_is_a_connection_error(pool: Pool) -> None:
    with pytest.raises(aiohttp.ClientOSError) as caught:
        await pool.request("GET", "http://127.0.0.1:9/", {}, None, 5, 5)
    assert "Cannot connect" in str(caught.value)


async def test_headers_cannot_smuggle_lines(pool: Pool) -> None:
    with pytest.raises(ValueError):
        await pool.request("GET", "http://127.0.0.1:9/", {"x-a": "1\r\nx-b: 2"}, None, 5, 5)


async def test_a_slow_reader_pauses_the_socket_and_loses_nothing(pool: Pool) -> None:
    body = bytes(range(256)) * 16384  # 4 MiB, far past the high-water mark
    up = await serve(answering(ok(body)))
    resp = await pool.request("GET", up.url, {}, None, 5, 5)
    await asyncio.sleep(0.2)  # time enough for all of it to arrive, were the socket still read
    got, largest = bytearray(), 0
    async for chunk in resp.content.iter_any():
        got += chunk
        largest = max(largest, len(chunk))
        await asyncio.sleep(0.001)
    assert bytes(got) == body
    assert largest <= HIGH_WATER + (1 << 18)  # held at the mark (plus one read of the socket)
    await up.__aexit__()


async def test_releasing_mid_body_closes_the_connection(pool: Pool) -> None:
    up = await serve(answering(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nsome"))
    resp = await pool.request("GET", up.url, {}, None, 5, 5)
    resp.release()
    await asyncio.wait_for(up.closed.wait(), 2)
    assert not any(pool.idle.values())
    await up.__aexit__()


async def test_an_interim_100_continue_is_skipped(pool: Pool) -> None:
    up = await serve(answering(b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"final")))
    resp = await pool.request("POST", up.url, {}, b"{}", 5, 5)
    assert (resp.status, await resp.read()) == (200, b"final")
    await up.__aexit__()


async def test_a_caller_cancelled_before_the_headers_drops_the_connection(pool: Pool) -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.read()

    up = await Upstream(slow).__aenter__()
    task = asyncio.create_task(pool.request("GET", up.url, {}, None, 5, 5))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(up.closed.wait(), 2)
    assert not pool.open
    await up.__aexit__()


@pytest.mark.parametrize("name", ["localhost", "someone-else.example"])
async def test_tls_upstreams_are_verified_against_the_trusted_cas(
    pool: Pool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """HTTPS with the system's trust store, which SSL_CERT_FILE replaces (as for aiohttp and
    the openai SDK): a certificate for the host it was asked for passes; any other fails."""
    server = await trusted_https_server(tmp_path, monkeypatch, name)
    port = server.sockets[0].getsockname()[1]
    try:
        if name == "localhost":
            assert await (await pool.request("GET", f"https://localhost:{port}/", {}, None, 5, 5)).read() == b"secret"
        else:
            with pytest.raises(aiohttp.ClientOSError, match="certificate"):
                await pool.request("GET", f"https://localhost:{port}/", {}, None, 5, 5)
    finally:
        server.close()
