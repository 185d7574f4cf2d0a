"""The floor: the least a Python gateway can do, run as a system beside the others.

A raw ASGI app under uvicorn (httptools + uvloop, as llmrelay gets them) that forwards each
request's bytes, unparsed, with its method, to the same path on the upstream over an aiohttp keep-alive pool, and
returns the answer's bytes: a JSON body whole, an event stream chunk by chunk as it arrives.
No auth, no validation, no store, no translation: what any Python gateway pays at the least.

With FLOOR_CLIENT=lean it forwards over llmrelay's own upstream client (llmrelay.http_client)
instead of aiohttp's: the floor for a gateway that brings its own client (`floor-lean`).

    FLOOR_UPSTREAM=http://127.0.0.1:8080 python -m uvicorn floor:app --app-dir bench --workers 2
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

UPSTREAM = os.environ.get("FLOOR_UPSTREAM", "http://127.0.0.1:8080")
LEAN = os.environ.get("FLOOR_CLIENT") == "lean"
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench"}
_session: aiohttp.ClientSession | None = None
_pool: Any = None  # llmrelay.http_client.Pool, when LEAN


async def _lifespan(receive: Receive, send: Send) -> None:
    global _session
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup" and LEAN:
            import asyncio

            from llmrelay.http_client import Pool

            global _pool
            _pool = Pool(asyncio.get_running_loop())
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.startup":
            connector = aiohttp.TCPConnector(limit=1000, keepalive_timeout=300)
            _session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if _session is not None:
                await _session.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    # The method too: a background response's polls (GET /v1/responses/{id}) pass through as well.
    if LEAN:
        await _answer(await _pool.request(scope["method"], UPSTREAM + scope["path"], HEADERS, body, 600, 10), send)
        return
    assert _session is not None
    async with _session.request(scope["method"], UPSTREAM + scope["path"], data=body, headers=HEADERS) as resp:
        await _answer(resp, send)


async def _answer(resp: Any, send: Send) -> None:
    """The upstream's answer as it came (aiohttp's response or llmrelay's, read alike): an event
    stream chunk by chunk as it arrives, a JSON body whole."""
    ctype = resp.headers.get("content-type", "application/json").encode()
    if ctype.startswith(b"text/event-stream"):
        await send({"type": "http.response.start", "status": resp.status, "headers": [(b"content-type", ctype)]})
        async for chunk in resp.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    data = await resp.read()
    headers = [(b"content-type", ctype), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": resp.status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
