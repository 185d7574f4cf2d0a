"""Which MCP servers a request may reach, and the plan for the tools it names.

A proxy reaches only the servers its config names (`mcp_servers: {name: {url, transport,
headers}}`, LiteLLM's shape): a request names one by its URL or by `server_label` equal to the
name. Any other URL is a 400 unless the relay allows arbitrary URLs (the SDK does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .. import errors
from .replay import flat_name

Json = dict[str, Any]
Transport = Literal["http", "sse"]
TRANSPORTS: dict[str, Transport] = {"http": "http", "streamable_http": "http", "streamable-http": "http", "sse": "sse"}
SECRET_FIELDS = ("headers", "authorization")


@dataclass(frozen=True, slots=True)
class McpServer:
    name: str
    url: str
    transport: Transport = "http"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class McpPolicy:
    """The servers a relay may reach, and limits on each call."""

    servers: dict[str, McpServer] = field(default_factory=dict)
    allow_any_url: bool = True
    call_timeout: float = 60.0  # seconds for one tools/list or tools/call, connection included
    max_output_bytes: int = 100_000  # a larger result is an error, not a flood into the model
    max_rounds: int = 8  # model turns in one response before the model must answer

    def resolve(self, tool: Json, param: str) -> McpServer:
        label = str(tool.get("server_label") or "")
        url = tool.get("server_url")
        if not url:
            if label in self.servers:
                return self.servers[label]
            raise errors.bad_request(
                f"MCP server '{label}' is not configured here: give its server_url, or a server_label naming "
                "a server from the proxy's mcp_servers.",
                param=param,
            )
        url = str(url)
        for server in self.servers.values():
            if _same_url(server.url, url):
                return server
        if not self.allow_any_url:
            raise errors.bad_request(
                f"MCP server URL '{url}' is not allowed: this proxy only reaches the servers named in its "
                "mcp_servers config.",
                param=f"{param}.server_url",
                code="mcp_server_not_allowed",
            )
        return McpServer(label, url, "sse" if url.rstrip("/").endswith("/sse") else "http")


@dataclass(slots=True)
class Target:
    """One `mcp` tool of a request, resolved."""

    label: str
    server: McpServer
    headers: dict[str, str]
    allowed: Any  # `allowed_tools`: a list of names, a filter object, or None
    approval: Any  # `require_approval`: "always", "never" or a filter object; OpenAI's default is always

    def allows(self, tool: Json) -> bool:
        return self.allowed is None or _matches(self.allowed, tool)

    def needs_approval(self, tool: Json) -> bool:
        rule = self.approval
        if rule in (None, "always"):
            return True
        if rule == "never":
            return False
        if isinstance(rule, dict):
            if isinstance(rule.get("never"), dict) and _matches(rule["never"], tool):
                return False
            if isinstance(rule.get("always"), dict) and _matches(rule["always"], tool):
                return True
        return True


@dataclass(slots=True)
class Plan:
    targets: list[Target]
    echo: list[Json]  # the request's tools as the response shows them: MCP secrets removed
    policy: McpPolicy
    history: list[Json] = field(default_factory=list)  # earlier items of the chain, as stored
    # filled while running: function name -> (target, the tool as listed)
    names: dict[str, tuple[Target, Json]] = field(default_factory=dict)


def has_mcp(params: Json) -> bool:
    tools = params.get("tools")
    return isinstance(tools, list) and any(isinstance(t, dict) and t.get("type") == "mcp" for t in tools)


def plan_for(params: Json, policy: McpPolicy) -> Plan:
    """Take the `mcp` tools out of `params["tools"]` (in place) and resolve each; a tool that
    names no reachable server is a 400 naming it."""
    from .client import require_sdk

    targets: list[Target] = []
    kept: list[Json] = []
    echo: list[Json] = []
    for i, tool in enumerate(params.get("tools") or []):
        if not isinstance(tool, dict) or tool.get("type") != "mcp":
            kept.append(tool)
            echo.append(tool)
            continue
        param = f"tools[{i}]"
        require_sdk(param)
        if tool.get("connector_id") or tool.get("tunnel_id"):
            raise errors.bad_request(
                "MCP connectors and tunnels are only run by OpenAI; give a server_url.", param=param
            )
        label = str(tool.get("server_label") or "")
        if not label:
            raise errors.bad_request("An MCP tool needs a server_label.", param=f"{param}.server_label")
        if any(t.label == label for t in targets):
            raise errors.bad_request(f"Duplicate MCP server_label '{label}'.", param=f"{param}.server_label")
        server = policy.resolve(tool, param)
        headers = {**server.headers, **{str(k): str(v) for k, v in (tool.get("headers") or {}).items()}}
        if tool.get("authorization"):
            headers["Authorization"] = f"Bearer {tool['authorization']}"
        targets.append(Target(label, server, headers, tool.get("allowed_tools"), tool.get("require_approval")))
        echo.append(public(tool))
    params["tools"] = kept
    return Plan(targets, echo, policy)


def public(tool: Json) -> Json:
    """An MCP tool without what must never be stored or echoed: its headers and token."""
    return {k: v for k, v in tool.items() if k not in SECRET_FIELDS}


def without_secrets(response: Json) -> Json:
    """A response whose echoed MCP tools hold no headers or token (an upstream may echo them)."""
    tools = response.get("tools")
    if not isinstance(tools, list) or not any(_secret(t) for t in tools):
        return response
    return {**response, "tools": [public(t) if _secret(t) else t for t in tools]}


def _secret(tool: Any) -> bool:
    return isinstance(tool, dict) and tool.get("type") == "mcp" and any(tool.get(k) for k in SECRET_FIELDS)


def function_tool(target: Target, tool: Json) -> Json:
    return {
        "type": "function",
        "name": flat_name(target.label, str(tool["name"])),
        "description": tool.get("description") or "",
        "parameters": tool.get("input_schema") or {"type": "object", "properties": {}},
    }


def _matches(rule: Any, tool: Json) -> bool:
    if isinstance(rule, list):
        return tool.get("name") in rule
    if not isinstance(rule, dict):
        return False
    names = rule.get("tool_names")
    if names is not None and tool.get("name") not in names:
        return False
    if rule.get("read_only") is not None:
        read_only = bool((tool.get("annotations") or {}).get("readOnlyHint"))
        if read_only != bool(rule["read_only"]):
            return False
    return names is not None or rule.get("read_only") is not None


def _same_url(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")
