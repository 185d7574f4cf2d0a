"""The pure parts of the MCP tool loop: server resolution, approval rules, replay, renumbering."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from llmrelay import errors
from llmrelay.config import ConfigError, parse_config
from llmrelay.items import replayable
from llmrelay.mcp import McpPolicy, McpServer, plan_for
from llmrelay.mcp.replay import as_function_items, flat_name
from llmrelay.streaming.builder import ResponseBuilder

SERVER = McpServer("tools", "http://mcp.internal/mcp", "http", {"Authorization": "Bearer config"})


def plan(*tools: dict[str, Any], allow_any: bool = False) -> Any:
    params = {"tools": [{"type": "function", "name": "f", "parameters": {}}, *tools]}
    result = plan_for(params, McpPolicy({"tools": SERVER}, allow_any_url=allow_any))
    return params, result


def test_mcp_tools_leave_the_request_and_their_secrets_leave_the_echo() -> None:
    tool = {"type": "mcp", "server_label": "tools", "headers": {"X-Key": "s"}, "authorization": "tok"}
    params, p = plan(tool)
    assert params["tools"] == [{"type": "function", "name": "f", "parameters": {}}]
    assert p.echo[1] == {"type": "mcp", "server_label": "tools"}
    target = p.targets[0]
    assert target.server is SERVER
    assert target.headers == {"Authorization": "Bearer tok", "X-Key": "s"}  # the request's token wins


def test_a_configured_url_is_reached_under_any_label_and_other_urls_are_refused() -> None:
    _, p = plan({"type": "mcp", "server_label": "mine", "server_url": "http://mcp.internal/mcp/"})
    assert p.targets[0].server is SERVER and p.targets[0].label == "mine"
    with pytest.raises(errors.BadRequestError) as exc:
        plan({"type": "mcp", "server_label": "x", "server_url": "http://evil.example/mcp"})
    assert "http://evil.example/mcp" in exc.value.message and exc.value.body["param"] == "tools[1].server_url"
    _, p = plan({"type": "mcp", "server_label": "x", "server_url": "http://old.example/sse"}, allow_any=True)
    assert p.targets[0].server.transport == "sse"


@pytest.mark.parametrize(
    ("tool", "param"),
    [
        ({"type": "mcp", "server_label": "nowhere"}, "tools[1]"),
        ({"type": "mcp", "server_label": "d", "connector_id": "connector_gmail"}, "tools[1]"),
        ({"type": "mcp", "server_url": "http://mcp.internal/mcp"}, "tools[1].server_label"),
    ],
)
def test_unusable_mcp_tools_are_400s_naming_them(tool: dict[str, Any], param: str) -> None:
    with pytest.raises(errors.BadRequestError) as exc:
        plan(tool)
    assert exc.value.body["param"] == param


def test_a_missing_mcp_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mcp", None)
    with pytest.raises(errors.BadRequestError) as exc:
        plan({"type": "mcp", "server_label": "tools"})
    assert "llmrelay[mcp]" in exc.value.message


def test_approval_and_allowed_tools_rules() -> None:
    read = {"name": "read", "annotations": {"readOnlyHint": True}}
    write = {"name": "write"}

    def target(**tool: Any) -> Any:
        return plan({"type": "mcp", "server_label": "tools", **tool})[1].targets[0]

    assert target().needs_approval(read)  # OpenAI's default is "always"
    assert not target(require_approval="never").needs_approval(write)
    rule = {"never": {"read_only": True}}
    assert not target(require_approval=rule).needs_approval(read) and target(require_approval=rule).needs_approval(
        write
    )
    rule = {"never": {"tool_names": ["write"]}, "always": {"tool_names": ["read"]}}
    assert not target(require_approval=rule).needs_approval(write) and target(require_approval=rule).needs_approval(
        read
    )
    assert target(allowed_tools=["read"]).allows(read) and not target(allowed_tools=["read"]).allows(write)
    only_read = target(allowed_tools={"read_only": True})
    assert only_read.allows(read) and not only_read.allows(write)


def test_flat_names_are_unique_per_label_and_safe_everywhere() -> None:
    assert flat_name("a", "x") != flat_name("b", "x")
    name = flat_name("my server", "tool.v2" + "z" * 100)
    assert name.startswith("my_server__tool_v2") and len(name) == 64


def test_mcp_calls_replay_as_function_calls_and_the_rest_of_mcp_is_left_out() -> None:
    stored = [
        {"type": "mcp_list_tools", "id": "mcpl_1", "server_label": "s", "tools": []},
        {"type": "mcp_call", "id": "mcp_1", "server_label": "s", "name": "echo", "arguments": "{}", "output": "ok"},
        {"type": "mcp_call", "id": "mcp_2", "server_label": "s", "name": "bad", "arguments": "{}", "output": None,
         "error": {"type": "http_error", "code": 502, "message": "down"}},
        {"type": "mcp_approval_request", "id": "mcpr_1", "server_label": "s", "name": "echo", "arguments": "{}"},
    ]  # fmt: skip
    assert as_function_items(stored) == [
        {"type": "function_call", "call_id": "mcp_1", "name": "s__echo", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "mcp_1", "output": "ok"},
        {"type": "function_call", "call_id": "mcp_2", "name": "s__bad", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "mcp_2", "output": "Error: down"},
    ]
    assert replayable(stored) == as_function_items(stored)


def test_forwarded_events_are_renumbered_into_one_response() -> None:
    ids = iter(range(100))
    outer = ResponseBuilder({"id": "resp_1"}, lambda p: f"{p}_{next(ids)}")
    outer.start()
    index, _ = outer.open_item({"id": "mcpl_0", "type": "mcp_list_tools", "server_label": "s", "tools": []})
    inner = ResponseBuilder({"id": "resp_1"}, lambda p: f"{p}_{next(ids)}")
    events = [*inner.start(), *inner.text("hi"), *inner.finish(usage=None)]
    forwarded = [outer.forward(e.data, index + 1) for e in events if "output_index" in e.data]
    assert [e.data["sequence_number"] for e in forwarded] == list(range(3, 3 + len(forwarded)))
    assert {e.data["output_index"] for e in forwarded} == {1}
    assert [i["type"] for i in outer.response["output"]] == ["mcp_list_tools", "message"]
    assert outer.response["output"][1]["content"][0]["text"] == "hi"


def test_the_config_names_mcp_servers_in_litellms_shape() -> None:
    config = parse_config({"mcp_servers": {"docs": {"url": "http://d/sse", "transport": "sse", "auth_type": "none"}},
                           "general_settings": {"mcp_allow_any_url": True}})  # fmt: skip
    policy = config.mcp_policy()
    assert policy.servers["docs"] == McpServer("docs", "http://d/sse", "sse", {}) and policy.allow_any_url
    assert not parse_config({}).mcp_policy().allow_any_url  # the proxy's default
    with pytest.raises(ConfigError):
        parse_config({"mcp_servers": {"docs": {"url": "http://d", "transport": "carrier-pigeon"}}})
