"""Talking to one MCP server with the `mcp` SDK: list its tools, call one.

Each operation opens its own short session (streamable HTTP, or SSE for older servers), so a
response holds no connection between the model's rounds. Every failure comes back as an
OpenAI-shaped `mcp_call.error`, never as an exception: the model can go on without the tool.
Headers carry secrets: they are sent, never logged.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import anyio
import orjson

from .. import errors
from .servers import Target

log = logging.getLogger("llmrelay.mcp")
Json = dict[str, Any]
EXTRA_HINT = "MCP tools need the 'mcp' package: pip install 'llmrelay[mcp]'."


def require_sdk(param: str) -> None:
    try:
        import mcp  # noqa: F401
    except ImportError:
        raise errors.bad_request(EXTRA_HINT, param=param, code="unsupported_parameter") from None


@asynccontextmanager
async def _session(target: Target) -> AsyncIterator[Any]:
    from mcp import ClientSession

    server = target.server
    if server.transport == "sse":
        from mcp.client.sse import sse_client

        async with sse_client(server.url, headers=target.headers) as (read, write), ClientSession(read, write) as s:
            await s.initialize()
            yield s
    else:
        async with _streamable_http(target) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            yield session


@asynccontextmanager
async def _streamable_http(target: Target) -> AsyncIterator[Any]:
    from mcp.client import streamable_http

    if not hasattr(streamable_http, "streamable_http_client"):  # older mcp releases
        async with streamable_http.streamablehttp_client(target.server.url, headers=target.headers) as (r, w, _):
            yield r, w
        return
    import httpx

    timeout = httpx.Timeout(30, read=300)  # the MCP SDK's own defaults; each operation has its own bound
    async with (
        httpx.AsyncClient(headers=target.headers, timeout=timeout, follow_redirects=True) as http,
        streamable_http.streamable_http_client(target.server.url, http_client=http) as (read, write, _),
    ):
        yield read, write


async def list_tools(target: Target, timeout: float) -> tuple[list[Json], str | None]:
    """The server's tools, as `mcp_list_tools.tools` lists them, or an error message."""
    try:
        with anyio.fail_after(timeout):
            async with _session(target) as session:
                listed = await session.list_tools()
    except Exception as exc:  # a server that fails or hangs is reported, never raised
        return [], _describe(exc, target, timeout)["message"]
    tools = []
    for tool in listed.tools:
        annotations = tool.annotations.model_dump(exclude_none=True) if tool.annotations else None
        tools.append({"name": tool.name, "input_schema": tool.inputSchema, "description": tool.description,
                      "annotations": annotations})  # fmt: skip
    return tools, None


async def call_tool(
    target: Target, name: str, arguments: str, timeout: float, limit: int
) -> tuple[str | None, Json | None]:
    """(output, None) or (None, error) for one call."""
    try:
        args = orjson.loads(arguments or "{}")
        if not isinstance(args, dict):
            raise ValueError("the arguments are not a JSON object")
    except ValueError as exc:
        return None, {"type": "mcp_protocol_error", "code": -32602, "message": f"Invalid arguments: {exc}"}
    try:
        with anyio.fail_after(timeout):
            async with _session(target) as session:
                result = await session.call_tool(name, args)
    except Exception as exc:
        return None, _describe(exc, target, timeout)
    content = [block.model_dump(exclude_none=True, mode="json") for block in result.content]
    if result.isError:
        return None, {"type": "mcp_tool_execution_error", "content": content}
    texts = [b["text"] if b.get("type") == "text" else orjson.dumps(b).decode() for b in content]
    if not texts and result.structuredContent is not None:
        texts = [orjson.dumps(result.structuredContent).decode()]
    output = "\n".join(texts)
    size = len(output.encode())
    if size > limit:
        message = f"The tool's output of {size} bytes exceeds the limit of {limit} bytes."
        return None, {"type": "mcp_tool_execution_error", "content": [{"type": "text", "text": message}]}
    return output, None


def _describe(exc: BaseException, target: Target, timeout: float) -> Json:
    exc = _leaf(exc)
    label = target.label
    if isinstance(exc, TimeoutError):
        return {"type": "mcp_protocol_error", "code": -32001,
                "message": f"MCP server '{label}' did not answer within {timeout:g}s."}  # fmt: skip
    error = getattr(exc, "error", None)  # mcp.shared.exceptions.McpError
    if error is not None and hasattr(error, "code"):
        return {"type": "mcp_protocol_error", "code": int(error.code), "message": str(error.message)}
    response = getattr(exc, "response", None)  # httpx.HTTPStatusError
    if response is not None and hasattr(response, "status_code"):
        return {"type": "http_error", "code": int(response.status_code),
                "message": f"MCP server '{label}' answered HTTP {response.status_code}."}  # fmt: skip
    where = urlsplit(target.server.url)  # a URL's query or user part may hold a token: left out of the log
    log.warning("MCP server %r at %s%s failed: %s", label, where.hostname, where.path, type(exc).__name__)
    return {"type": "http_error", "code": 502, "message": f"MCP server '{label}' could not be reached."}


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
