"""MCP items as plain function-call items, for upstreams that only know function tools."""

from __future__ import annotations

import re
from typing import Any

import orjson

Json = dict[str, Any]
MCP_ONLY = frozenset({"mcp_list_tools", "mcp_approval_request", "mcp_approval_response"})
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def flat_name(server_label: str, tool: str) -> str:
    """The function name a model sees for `tool` of `server_label`: unique per label, within
    the 64 characters and the alphabet every provider accepts."""
    return _UNSAFE.sub("_", f"{server_label}__{tool}")[:64]


def error_text(error: Any) -> str:
    """What the model is told about a failed call."""
    if isinstance(error, dict):
        if "message" in error:
            return str(error["message"])
        content = error.get("content")
        if isinstance(content, list):
            return " ".join(str(c.get("text", "")) for c in content if isinstance(c, dict)) or "error"
        return orjson.dumps(error).decode()
    return str(error)


def call_pair(call_id: str, name: str, arguments: str, output: str) -> list[Json]:
    return [
        {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments},
        {"type": "function_call_output", "call_id": call_id, "output": output},
    ]


def as_function_items(items: list[Json]) -> list[Json]:
    """`mcp_call` becomes a function call and its output; the other MCP items, which only
    llmrelay and OpenAI understand, are left out."""
    out: list[Json] = []
    for item in items:
        kind = item.get("type")
        if kind == "mcp_call":
            result = item.get("output")
            if result is None:
                result = f"Error: {error_text(item.get('error'))}"
            name = flat_name(str(item.get("server_label", "")), str(item.get("name", "")))
            out += call_pair(str(item.get("id")), name, str(item.get("arguments") or "{}"), str(result))
        elif kind not in MCP_ONLY:
            out.append(item)
    return out
