"""MCP tools through the SDK (sync and async): any server URL is allowed by default."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import llmrelay
from llmrelay.mcp import McpPolicy
from tests.conftest import SDK
from tests.fakes.process import FakeServer, start_fake


@pytest.fixture(scope="module")
def mcp_server() -> Iterator[FakeServer]:
    with start_fake("tests.fakes.mcp_server") as server:
        yield server


def tool(server: FakeServer, *allowed: str, approval: str = "never") -> dict:
    return {"type": "mcp", "server_label": "t", "server_url": server.url, "allowed_tools": list(allowed),
            "require_approval": approval}  # fmt: skip


async def test_the_sdk_runs_a_tool_loop_on_any_url(
    sdk: SDK, anthropic_fake: FakeServer, mcp_server: FakeServer
) -> None:
    opts = {"model": "anthropic/claude-sonnet-4-5", "api_key": "k", "api_base": anthropic_fake.url}
    r = await sdk.create(input="sdk", tools=[tool(mcp_server, "echo")], **opts)
    assert [i.type for i in r.output] == ["mcp_list_tools", "mcp_call", "message"]
    assert r.output_text == "Echo (turns=1): tool said mcp echo: sdk"
    events = await sdk.stream(input="sdk stream", tools=[tool(mcp_server, "echo")], **opts)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].response.output_text == "Echo (turns=1): tool said mcp echo: sdk stream"
    assert (await sdk.get(r.id)).output == r.output


async def test_a_relay_can_refuse_unknown_urls(anthropic_fake: FakeServer, mcp_server: FakeServer) -> None:
    relay = llmrelay.Relay(store="memory", mcp=McpPolicy(allow_any_url=False))
    with pytest.raises(llmrelay.BadRequestError) as exc:
        await llmrelay.aresponses(model="anthropic/claude-sonnet-4-5", api_key="k", api_base=anthropic_fake.url,
                                  input="x", tools=[tool(mcp_server, "echo")], relay=relay)  # fmt: skip
    assert mcp_server.url in exc.value.message
    await relay.aclose()


async def test_mock_responses_list_the_tools_and_answer(mcp_server: FakeServer) -> None:
    r = await llmrelay.aresponses(model="anthropic/claude-sonnet-4-5", mock_response="mocked", input="x",
                                  tools=[tool(mcp_server, "echo")], relay=llmrelay.Relay(store="memory"))  # fmt: skip
    assert [i.type for i in r.output] == ["mcp_list_tools", "message"] and r.output_text == "mocked"


async def test_the_round_limit_makes_the_model_answer(anthropic_fake: FakeServer, mcp_server: FakeServer) -> None:
    relay = llmrelay.Relay(store="memory", mcp=McpPolicy(max_rounds=1))
    r = await llmrelay.aresponses(model="anthropic/claude-sonnet-4-5", api_key="k", api_base=anthropic_fake.url,
                                  input="enough", tools=[tool(mcp_server, "echo")], relay=relay)  # fmt: skip
    assert [i.type for i in r.output] == ["mcp_list_tools", "message"]
    assert r.output_text == "Echo (turns=1): enough"
    await relay.aclose()
