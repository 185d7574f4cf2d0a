"""A real MCP server for the tests: the `mcp` SDK's FastMCP over streamable HTTP (``/mcp``)
and the older SSE transport (``/sse``).

Run with ``python -m tests.fakes.mcp_server --port N``. Every tool takes ``q`` (a string), the
argument the fake providers put in the calls they make:

- ``echo``: ``mcp echo: <q>``
- ``whoami``: the scheme and length of the ``authorization`` header received (never the secret)
- ``fail``: raises, so the call ends in an error result
- ``hang``: never returns (until the client goes away)
- ``huge``: 200 000 characters

``GET /_fake/health`` answers like the other fakes, ``GET /_fake/calls`` lists the tool calls made
(name and arguments, oldest first), ``DELETE /_fake/calls`` forgets them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from mcp.server.fastmcp import Context, FastMCP
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.control import serve

HUGE = 200_000
calls: list[dict[str, Any]] = []


def build_server() -> FastMCP:
    server = FastMCP("llmrelay-test-tools", stateless_http=True)

    @server.tool(description="Echo the query back.")
    def echo(q: str) -> str:
        calls.append({"name": "echo", "arguments": {"q": q}})
        return f"mcp echo: {q}"

    @server.tool(description="Report the authorization header the server received.")
    def whoami(q: str, ctx: Context) -> str:  # type: ignore[type-arg]
        calls.append({"name": "whoami", "arguments": {"q": q}})
        request = ctx.request_context.request
        header = request.headers.get("authorization", "") if request else ""
        scheme, _, token = header.partition(" ")
        return f"authorization: {scheme} ({len(token)} chars)" if header else "authorization: none"

    @server.tool(description="Always fails.")
    def fail(q: str) -> str:
        calls.append({"name": "fail", "arguments": {"q": q}})
        raise ValueError(f"fail was asked for {q!r} and failed")

    @server.tool(description="Never answers.")
    async def hang(q: str) -> str:
        calls.append({"name": "hang", "arguments": {"q": q}})
        await asyncio.Event().wait()
        return "never"

    @server.tool(description="A very large answer.")
    def huge(q: str) -> str:
        calls.append({"name": "huge", "arguments": {"q": q}})
        return "x" * HUGE

    return server


def build(args: argparse.Namespace) -> Starlette:
    server = build_server()
    http_app = server.streamable_http_app()
    sse_app = server.sse_app()

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "base_path": "/mcp"})

    async def list_calls(request: Request) -> Response:
        if request.method == "DELETE":
            calls.clear()
        return JSONResponse(calls)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with server.session_manager.run():
            yield

    routes = [
        Route("/_fake/health", health),
        Route("/_fake/calls", list_calls, methods=["GET", "DELETE"]),
        *http_app.routes,  # /mcp
        *sse_app.routes,  # /sse and /messages/
    ]
    return Starlette(routes=routes, lifespan=lifespan)


if __name__ == "__main__":
    serve(build, "A real MCP server with test tools")
