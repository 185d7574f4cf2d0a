"""Egress through an HTTP proxy named by the environment: which origins go through it, CONNECT
tunnels with TLS verified end to end, plain http in absolute form, credentials, refusals."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from llmrelay import http_proxy
from llmrelay.http_client import Pool
from tests.fakes.forward_proxy import ForwardProxy
from tests.fakes.tls import trusted_https_server

PROXY_VARS = ("https_proxy", "http_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.delenv("REQUEST_METHOD", raising=False)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_which_origins_go_through_which_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://alice:p%40ss@egress.corp:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,.internal.corp")
    proxy = http_proxy.from_environment("https", "api.openai.com", 443)
    assert proxy == http_proxy.Proxy("egress.corp", 3128, basic("alice", "p@ss"), "http://egress.corp:3128")
    assert http_proxy.from_environment("http", "api.openai.com", 80) is None  # HTTPS_PROXY is for https only
    assert http_proxy.from_environment("https", "localhost", 8443) is None
    assert http_proxy.from_environment("https", "vllm.internal.corp", 443) is None
    monkeypatch.setenv("ALL_PROXY", "squid:8080")  # no scheme: http, as curl reads it
    assert http_proxy.from_environment("http", "api.openai.com", 80) == http_proxy.Proxy(
        "squid", 8080, None, "http://squid:8080"
    )
    monkeypatch.setenv("https_proxy", "http://lower:1")  # the lowercase name wins, as curl has it
    assert http_proxy.from_environment("https", "api.openai.com", 443).host == "lower"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("url", "why"),
    [("socks5://egress:1080", "HTTP proxies"), ("https://egress:3129", "HTTP proxies"), ("egress:31x8", "valid port")],
)
def test_a_proxy_that_is_not_plain_http_is_refused_by_name(url: str, why: str) -> None:
    with pytest.raises(aiohttp.InvalidURL, match=why):
        http_proxy.parse(url)


@pytest.fixture
async def pool() -> AsyncIterator[Pool]:
    p = Pool(asyncio.get_running_loop())
    yield p
    p.close()


@pytest.mark.parametrize("name", ["localhost", "someone-else.example"])
async def test_https_goes_through_a_connect_tunnel_with_tls_to_the_upstream(
    pool: Pool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """The tunnel carries TLS end to end: the upstream's certificate is checked against the host
    asked for (a certificate for another name fails), and the proxy sees the host and port only."""
    upstream = await trusted_https_server(tmp_path, monkeypatch, name)
    port = upstream.sockets[0].getsockname()[1]
    proxy = await ForwardProxy(credentials=("alice", "s3cret")).start()
    monkeypatch.setenv("HTTPS_PROXY", proxy.url())
    try:
        if name == "localhost":
            for _ in range(2):  # one tunnel, kept alive for the second request
                resp = await pool.request("POST", f"https://localhost:{port}/v1/responses", {}, b"{}", 5, 5)
                assert (resp.status, await resp.read()) == (200, b"secret")
        else:
            with pytest.raises(aiohttp.ClientOSError, match="certificate"):
                await pool.request("GET", f"https://localhost:{port}/", {}, None, 5, 5)
        connect = (f"CONNECT localhost:{port} HTTP/1.1", basic("alice", "s3cret"))
        assert [(s.line, s.authorization) for s in proxy.seen] == [connect]
    finally:
        await proxy.stop()
        upstream.close()


async def test_plain_http_is_asked_of_the_proxy_in_absolute_form(pool: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    heads: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            heads.append(await reader.readuntil(b"\r\n\r\n"))
            await reader.readexactly(2)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nplain")
            await writer.drain()

    upstream = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = upstream.sockets[0].getsockname()[1]
    proxy = await ForwardProxy(credentials=("bob", "pw")).start()
    monkeypatch.setenv("HTTP_PROXY", proxy.url())
    try:
        resp = await pool.request("POST", f"http://127.0.0.1:{port}/v1/chat/completions?x=1", {}, b"{}", 5, 5)
        assert (resp.status, await resp.read()) == (200, b"plain")
        line = f"POST http://127.0.0.1:{port}/v1/chat/completions?x=1 HTTP/1.1"
        assert [(s.line, s.authorization) for s in proxy.seen] == [(line, basic("bob", "pw"))]
        # the upstream got it in origin form, the credentials meant for the proxy kept from it
        assert heads[0].startswith(b"POST /v1/chat/completions?x=1 HTTP/1.1\r\n")
        assert b"proxy-authorization" not in heads[0].lower()
    finally:
        await proxy.stop()
        upstream.close()


async def test_a_proxy_that_refuses_the_tunnel_is_a_connection_error_naming_its_answer(
    pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = await ForwardProxy(credentials=("alice", "right")).start()
    monkeypatch.setenv("HTTPS_PROXY", proxy.url(with_credentials=False))
    try:
        with pytest.raises(aiohttp.ClientConnectionError, match=r"refused the tunnel.*407 Proxy Authentication"):
            await pool.request("GET", "https://api.example.com/v1/models", {}, None, 5, 5)
        assert not pool.open
    finally:
        await proxy.stop()


async def test_no_proxy_hosts_are_reached_directly(pool: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\ndirect")
            await writer.drain()

    upstream = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = upstream.sockets[0].getsockname()[1]
    proxy = await ForwardProxy().start()
    monkeypatch.setenv("HTTP_PROXY", proxy.url())
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    try:
        resp = await pool.request("GET", f"http://127.0.0.1:{port}/", {}, None, 5, 5)
        assert await resp.read() == b"direct"
        assert proxy.seen == []
    finally:
        await proxy.stop()
        upstream.close()
