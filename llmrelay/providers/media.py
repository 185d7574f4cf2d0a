"""Images and files by URL, for upstreams that cannot fetch them.

A translating adapter names in `fetches_urls` the part types whose http(s) URLs its upstream
fetches itself (Anthropic: images and documents; Chat Completions: images). Every other
http(s) `image_url` / `file_url` is fetched here, once per call, and sent inline as a data:
URL, which every adapter already maps to its provider's own form. A bare base64 `file_data`
becomes a data: URL too. Native Responses upstreams get the input untouched.

Fetching is bounded (size, time, content type) and refuses addresses that are not public
(loopback, private, link-local...) unless `allow_private`: a gateway that fetches any URL a
caller names could otherwise be made to read its own network. The address checked is the
one connected to (the host is resolved once and the connection pinned to it), so a name
that resolves differently the second time cannot slip past. Any failure is a 400 naming
the part, never a 500.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import mimetypes
import socket
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from .. import errors
from ..transport import Http
from .base import Call

Json = dict[str, Any]
MAX_REDIRECTS = 3
_MAGIC = ((b"\x89PNG", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"),
          (b"%PDF", "application/pdf"))  # fmt: skip
_FIELD = {"input_image": "image_url", "input_file": "file_url"}


@dataclass(frozen=True, slots=True)
class MediaPolicy:
    max_bytes: int = 20 * 1024 * 1024
    timeout: float = 15.0  # seconds for one fetch, redirects and body included
    allow_private: bool = False  # fetch from loopback / private / link-local addresses too


async def inline(call: Call, adapter: Any, http: Http, policy: MediaPolicy) -> None:
    """Replace the http(s) media URLs in this call's history and input that `adapter`'s upstream
    cannot fetch with data: URLs (new items: the stored ones keep their URLs)."""
    if getattr(adapter, "support", None) is None:
        return  # a native Responses upstream takes the input as it came
    value = call.params.get("input")
    if not _has_media(call.context) and not (isinstance(value, list) and _has_media(value)):
        return  # the common case, decided without a coroutine per item
    fetches: frozenset[str] = getattr(adapter, "fetches_urls", frozenset())
    call.context = [await _item(i, f"input[{n}]", fetches, http, policy) for n, i in enumerate(call.context)]
    if isinstance(value, list):
        call.params["input"] = [await _item(i, f"input[{n}]", fetches, http, policy) for n, i in enumerate(value)]


def _has_media(history: list[Any]) -> bool:
    # On every translated call: plain loops, no generator per item.
    for item in history:
        if type(item) is dict:
            parts = item.get("content") or item.get("output")
            if type(parts) is list:
                for p in parts:
                    if type(p) is dict and p.get("type") in _FIELD:
                        return True
    return False


async def _item(item: Any, where: str, fetches: frozenset[str], http: Http, policy: MediaPolicy) -> Any:
    if not isinstance(item, dict):
        return item
    key = "content" if item.get("type", "message") == "message" else "output"
    parts = item.get(key)
    if not isinstance(parts, list):
        return item
    new = [await _part(p, f"{where}.{key}[{n}]", fetches, http, policy) for n, p in enumerate(parts)]
    return item if all(a is b for a, b in zip(new, parts, strict=True)) else {**item, key: new}


async def _part(part: Any, where: str, fetches: frozenset[str], http: Http, policy: MediaPolicy) -> Any:
    if not isinstance(part, dict) or part.get("type") not in _FIELD:
        return part
    kind = part["type"]
    data = part.get("file_data")
    if kind == "input_file" and isinstance(data, str) and data and not data.startswith("data:"):
        mime = mimetypes.guess_type(part.get("filename") or "")[0] or "application/pdf"
        return {**part, "file_data": f"data:{mime};base64,{data}"}  # bare base64, as some clients send it
    field = _FIELD[kind]
    url = part.get(field)
    if kind == "input_file" and data:
        return part
    if not isinstance(url, str) or kind in fetches or not url.lower().startswith(("http://", "https://")):
        return part
    mime, body = await fetch(url, f"{where}.{field}", http, policy, image=kind == "input_image")
    encoded = f"data:{mime};base64,{base64.b64encode(body).decode()}"
    if kind == "input_image":
        return {**part, "image_url": encoded}
    name = part.get("filename") or URL(url).name or "file"
    return {k: v for k, v in part.items() if k != "file_url"} | {"file_data": encoded, "filename": name}


async def fetch(url: str, param: str, http: Http, policy: MediaPolicy, *, image: bool) -> tuple[str, bytes]:
    """(the content type, the body) of `url`, or a 400 naming `param`."""

    def refuse(why: str) -> errors.APIStatusError:
        return errors.bad_request(f"Could not fetch {url!r}: {why}.", param=param, code="invalid_image_url"
                                  if image else "invalid_file_url")  # fmt: skip

    session = await http.session()
    timeout = aiohttp.ClientTimeout(total=policy.timeout)
    target = URL(url)
    try:
        async with asyncio.timeout(policy.timeout):
            for _ in range(MAX_REDIRECTS + 1):
                if target.scheme not in ("http", "https") or not target.host:
                    raise refuse("only http and https URLs are fetched")
                address = await _address(target, policy, refuse)
                host = str(target.host_port_subcomponent)  # the Host header: the name, not the address
                pinned = target.with_host(address)
                tls = target.host if target.scheme == "https" else None
                async with session.get(pinned, headers={"host": host}, allow_redirects=False, timeout=timeout,
                                       server_hostname=tls) as resp:  # fmt: skip
                    if resp.status in (301, 302, 303, 307, 308) and resp.headers.get("location"):
                        target = target.join(URL(resp.headers["location"]))
                        continue
                    if resp.status >= 400:
                        raise refuse(f"the server answered HTTP {resp.status}")
                    if (resp.content_length or 0) > policy.max_bytes:
                        raise refuse(f"it is larger than the {policy.max_bytes} bytes allowed")
                    body = bytearray()
                    async for chunk in resp.content.iter_chunked(65536):
                        body += chunk
                        if len(body) > policy.max_bytes:
                            raise refuse(f"it is larger than the {policy.max_bytes} bytes allowed")
                    mime = _mime(resp.headers.get("content-type", ""), bytes(body[:16]))
                    if image and not mime.startswith("image/"):
                        raise refuse(f"it is {mime}, not an image")
                    if not image and mime in ("text/html", "application/xhtml+xml"):
                        raise refuse(f"it is {mime} (a web page), not a file")
                    return mime, bytes(body)
            raise refuse(f"more than {MAX_REDIRECTS} redirects")
    except TimeoutError:
        raise refuse(f"no complete answer within {policy.timeout:g} seconds") from None
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        raise refuse(f"{type(exc).__name__}: {exc}") from None


async def _address(target: URL, policy: MediaPolicy, refuse: Any) -> str:
    """The address to connect to: resolved once, public unless private ones are allowed."""
    host = str(target.host)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, target.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise refuse(f"its host does not resolve ({exc.strerror})") from None
    addresses = sorted({str(info[4][0]) for info in infos}, key=lambda a: ":" in a)  # IPv4 first
    for a in addresses:
        ip = ipaddress.ip_address(a.split("%", 1)[0])
        mapped = getattr(ip, "ipv4_mapped", None) or ip
        if not policy.allow_private and (not mapped.is_global or mapped.is_multicast):
            raise refuse(f"{host} is a private or local address ({a}), which this gateway does not fetch from")
    if not addresses:
        raise refuse("its host does not resolve")
    return addresses[0]


def _mime(header: str, head: bytes) -> str:
    mime = header.split(";", 1)[0].strip().lower()
    if not mime or mime in ("application/octet-stream", "binary/octet-stream"):
        for magic, sniffed in _MAGIC:
            if head.startswith(magic):
                return sniffed
        if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
            return "image/webp"
    return mime or "application/octet-stream"
