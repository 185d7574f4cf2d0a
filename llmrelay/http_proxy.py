"""Egress through an HTTP proxy, as the environment says: HTTPS_PROXY, HTTP_PROXY, ALL_PROXY
and NO_PROXY (lowercase first, as curl, requests and httpx read them).

An https upstream is reached through a CONNECT tunnel, TLS running end to end inside it, so
the proxy sees the host and port only; a plain-http upstream is asked through the proxy in
absolute form (`POST http://host/path`). Credentials in the proxy URL go as Basic
`Proxy-Authorization`. Proxies are spoken to in plain HTTP (`http://`): the scheme nearly
every corporate proxy uses; an `https://` or SOCKS proxy is refused with its name.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import urllib.request
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import aiohttp

MAX_HEAD = 16 * 1024  # a proxy's answer to CONNECT longer than this is not one


@dataclass(frozen=True, slots=True)
class Proxy:
    host: str
    port: int
    authorization: str | None  # the Proxy-Authorization value, from the URL's credentials
    shown: str  # the URL without its credentials, for messages

    def tunnel_request(self, host: str, port: int) -> bytes:
        lines = [f"CONNECT {host}:{port} HTTP/1.1", f"Host: {host}:{port}"]
        if self.authorization:
            lines.append(f"Proxy-Authorization: {self.authorization}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()


def from_environment(scheme: str, host: str, port: int) -> Proxy | None:
    """The proxy the environment names for this origin, or None to go direct."""
    proxies = urllib.request.getproxies_environment()
    url = proxies.get(scheme) or proxies.get("all")
    if not url or urllib.request.proxy_bypass_environment(f"{host}:{port}", proxies):
        return None
    return parse(url)


def parse(url: str) -> Proxy:
    if "://" not in url:
        url = f"http://{url}"  # `HTTPS_PROXY=proxy:3128`, as curl takes it
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise aiohttp.InvalidURL(f"The proxy {parts.scheme}://{parts.hostname} has no valid port") from None
    shown = f"{parts.scheme}://{parts.hostname}" + (f":{port}" if port else "")
    if parts.scheme.lower() != "http" or not parts.hostname:
        raise aiohttp.InvalidURL(f"Unsupported proxy {shown}: llmrelay speaks to HTTP proxies (http://host:port) only")
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode()
    return Proxy(parts.hostname, port or 80, authorization, shown)


class _Tunnel(asyncio.Protocol):
    """The proxy connection until it answers CONNECT: its head, read up to the blank line."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.answer: asyncio.Future[bytes] = loop.create_future()
        self._data = b""

    def data_received(self, data: bytes) -> None:
        self._data += data
        if not self.answer.done() and (b"\r\n\r\n" in self._data or len(self._data) > MAX_HEAD):
            self.answer.set_result(self._data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answer.done():
            self.answer.set_exception(_closed(exc))


def _closed(exc: Exception | None) -> aiohttp.ClientConnectionError:
    why = f": {exc}" if exc else ""
    return aiohttp.ClientConnectionError(f"The proxy closed the connection before answering CONNECT{why}")


async def tunnel(
    loop: asyncio.AbstractEventLoop, proxy: Proxy, host: str, port: int, tls: ssl.SSLContext, protocol: asyncio.Protocol
) -> None:
    """Open a CONNECT tunnel to host:port through `proxy`, run TLS for `host` inside it, and hand
    the TLS transport to `protocol`. Raises aiohttp's errors: a refusal names the proxy's status."""
    transport, waiting = await loop.create_connection(lambda: _Tunnel(loop), proxy.host, proxy.port)
    try:
        transport.write(proxy.tunnel_request(host, port))
        head = await waiting.answer
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise aiohttp.ClientConnectionError(
                f"The proxy {proxy.shown} did not answer CONNECT in HTTP: {status_line[:100]!r}"
            )
        if not 200 <= int(parts[1]) < 300:
            raise aiohttp.ClientConnectionError(
                f"The proxy {proxy.shown} refused the tunnel to {host}:{port}: {status_line[len(parts[0]) + 1 :][:200]}"
            )
        secured = await loop.start_tls(transport, waiting, tls, server_hostname=host)
    except BaseException:
        transport.close()
        raise
    if secured is None:  # the loop closed under it
        raise aiohttp.ClientConnectionError(f"TLS to {host}:{port} through {proxy.shown} did not start")
    secured.set_protocol(protocol)
    protocol.connection_made(secured)
