"""Remote MCP tools run by llmrelay for translated providers, through the proxy, against a real
MCP server, driven and checked by the official openai SDK."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any, get_args

import openai
import pytest
from openai import OpenAI
from openai.types.responses import Response, ResponseStreamEvent
from websockets.sync.client import connect

from tests.e2e.proxy_process import ProxyProcess, start_proxy, write_config
from tests.fakes.process import FakeServer, start_fake

MODELS = {"claude": "anthropic/claude-sonnet-4-5", "gemini": "gemini/gemini-2.5-flash", "llama": "groq/llama-3.3-70b"}
# the openai class of each stream event type, to validate an event against exactly its own
EVENTS = {get_args(c.model_fields["type"].annotation)[0]: c for c in get_args(get_args(ResponseStreamEvent)[0])}
SECRET = "req-secret-0123456789"


@pytest.fixture(scope="module")
def mcp_server() -> Iterator[FakeServer]:
    with start_fake("tests.fakes.mcp_server") as server:
        yield server


@pytest.fixture(scope="module")
def proxy(
    mcp_server: FakeServer,
    anthropic_fake: FakeServer,
    gemini_fake: FakeServer,
    openai_fake: FakeServer,
    chat_fake: FakeServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ProxyProcess]:
    bases = {"claude": anthropic_fake.url, "gemini": gemini_fake.url, "llama": chat_fake.url}
    model_list: list[dict[str, Any]] = [
        {"model_name": name, "litellm_params": {"model": model, "api_key": "k", "api_base": bases[name]}}
        for name, model in MODELS.items()
    ]
    model_list.append(
        {"model_name": "gpt", "litellm_params": {"model": "openai/gpt-4o", "api_key": "k", "api_base": openai_fake.url}}
    )
    config = {
        "model_list": model_list,
        "mcp_servers": {"tools": {"url": mcp_server.url, "transport": "http",
                                  "headers": {"Authorization": "Bearer config-secret-abc"}},
                        "legacy": {"url": mcp_server.root + "/sse", "transport": "sse"},
                        "down": {"url": "http://127.0.0.1:9/mcp"}},
        "general_settings": {"mcp_call_timeout": 2, "mcp_max_output_bytes": 50_000},
    }  # fmt: skip
    with start_proxy("--config", str(write_config(config, tmp_path_factory.mktemp("mcp")))) as p:
        yield p


@pytest.fixture
def client(proxy: ProxyProcess) -> OpenAI:
    return OpenAI(base_url=proxy.url, api_key="k", max_retries=0)


def mcp_tool(mcp_server: FakeServer, *allowed: str, approval: Any = "never", **extra: Any) -> dict[str, Any]:
    return {"type": "mcp", "server_label": "tools", "server_url": mcp_server.url, "allowed_tools": list(allowed),
            "require_approval": approval, **extra}  # fmt: skip


def streamed(client: OpenAI, **params: Any) -> tuple[list[Any], Response]:
    """Every event, each validated against the openai types; sequence numbers gapless."""
    events = list(client.responses.create(stream=True, **params))
    for event in events:
        valid(event.model_dump(mode="json", exclude_unset=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].type == "response.completed"
    return events, events[-1].response


def valid(event: dict[str, Any]) -> None:
    EVENTS[event["type"]].model_validate(event)


def kinds(output: list[Any]) -> list[str]:
    """Output item types; a thinking model's reasoning items aside."""
    return [i.type for i in output if i.type != "reasoning"]


def mcp_call(response: Response) -> Any:
    return next(i for i in response.output if i.type == "mcp_call")


@pytest.mark.parametrize("model", list(MODELS))
def test_a_tool_loop_in_one_response(client: OpenAI, mcp_server: FakeServer, model: str) -> None:
    r = client.responses.create(model=model, input="capital of France", tools=[mcp_tool(mcp_server, "echo")])
    assert kinds(r.output) == ["mcp_list_tools", "mcp_call", "message"]
    listed = r.output[0]
    assert listed.server_label == "tools" and [t.name for t in listed.tools] == ["echo"]
    call = mcp_call(r)
    assert (call.name, call.server_label, call.status) == ("echo", "tools", "completed")
    assert json.loads(call.arguments) == {"q": "capital of France"} and call.output == "mcp echo: capital of France"
    assert r.output_text == "Echo (turns=1): tool said mcp echo: capital of France"
    assert client.responses.retrieve(r.id).output == r.output
    assert r.usage is not None and r.usage.total_tokens > 0


@pytest.mark.parametrize("model", list(MODELS))
def test_a_streamed_tool_loop_in_openais_event_order(client: OpenAI, mcp_server: FakeServer, model: str) -> None:
    events, final = streamed(client, model=model, input="streamed", tools=[mcp_tool(mcp_server, "echo")])
    types = [e.type for e in events]
    mcp_kinds = [k for k in types if "mcp" in k or k.startswith("response.output_item")]
    assert mcp_kinds[:4] == ["response.output_item.added", "response.mcp_list_tools.in_progress",
                             "response.mcp_list_tools.completed", "response.output_item.done"]  # fmt: skip
    call_id = mcp_call(final).id
    of_call = [
        e.type
        for e in events
        if getattr(e, "item_id", None) == call_id or getattr(getattr(e, "item", None), "id", None) == call_id
    ]
    call_events = [k for k in of_call if k != "response.mcp_call_arguments.delta"]
    assert "response.mcp_call_arguments.delta" in of_call
    assert call_events == ["response.output_item.added", "response.mcp_call.in_progress",
                               "response.mcp_call_arguments.done", "response.mcp_call.completed",
                               "response.output_item.done"]  # fmt: skip
    assert types.count("response.created") == 1 and types.count("response.completed") == 1
    added = [e for e in events if e.type == "response.output_item.added"]
    assert [e.output_index for e in added] == list(range(len(final.output)))
    assert kinds(final.output) == ["mcp_list_tools", "mcp_call", "message"]
    assert final.output_text == "Echo (turns=1): tool said mcp echo: streamed"
    assert client.responses.retrieve(final.id).output == final.output
    with client.responses.stream(model=model, input="helper", tools=[mcp_tool(mcp_server, "echo")]) as stream:
        assert stream.get_final_response().output_text == "Echo (turns=1): tool said mcp echo: helper"


def test_a_server_label_reaches_a_configured_server_with_its_headers(client: OpenAI, proxy: ProxyProcess) -> None:
    tool = {"type": "mcp", "server_label": "tools", "allowed_tools": ["whoami"], "require_approval": "never"}
    r = client.responses.create(model="claude", input="who", tools=[tool])
    assert mcp_call(r).output == "authorization: Bearer (17 chars)"  # the config's header
    sse = {**tool, "server_label": "legacy"}
    assert mcp_call(client.responses.create(model="gemini", input="old", tools=[sse])).output == "authorization: none"


def test_request_secrets_reach_the_server_and_are_never_stored_or_logged(
    client: OpenAI, proxy: ProxyProcess, mcp_server: FakeServer
) -> None:
    tool = mcp_tool(mcp_server, "whoami", headers={"Authorization": f"Bearer {SECRET}"})
    events, final = streamed(client, model="claude", input="who", tools=[tool])
    assert mcp_call(final).output == f"authorization: Bearer ({len(SECRET)} chars)"
    token = client.responses.create(model="gemini", input="who", tools=[{**mcp_tool(mcp_server, "whoami"),
                                                                         "authorization": SECRET}])  # fmt: skip
    assert mcp_call(token).output == f"authorization: Bearer ({len(SECRET)} chars)"
    for r in (final, token):
        stored = client.responses.with_raw_response.retrieve(r.id).text
        assert SECRET not in stored and "mcp" in stored
    assert all(SECRET not in json.dumps(e.model_dump()) for e in events)
    assert SECRET not in proxy.output()


@pytest.mark.parametrize("model", list(MODELS))
def test_approval_round_trip(client: OpenAI, mcp_server: FakeServer, model: str) -> None:
    tools = [mcp_tool(mcp_server, "echo", approval="always")]
    first = client.responses.create(model=model, input="may I", tools=tools)
    assert kinds(first.output) == ["mcp_list_tools", "mcp_approval_request"]
    asked = first.output[-1]
    assert (asked.name, asked.server_label, json.loads(asked.arguments)) == ("echo", "tools", {"q": "may I"})
    mcp_server._call("DELETE", "/_fake/calls")
    answer = {"type": "mcp_approval_response", "approval_request_id": asked.id, "approve": True}
    _, second = streamed(client, model=model, previous_response_id=first.id, input=[answer], tools=tools)
    assert kinds(second.output) == ["mcp_call", "message"]  # the listing is reused
    assert mcp_call(second).approval_request_id == asked.id and mcp_call(second).output == "mcp echo: may I"
    assert second.output_text == "Echo (turns=1): tool said mcp echo: may I"
    assert [c["name"] for c in mcp_server._call("GET", "/_fake/calls")] == ["echo"]

    refused = {**answer, "approve": False}
    third = client.responses.create(model=model, previous_response_id=first.id, input=[refused], tools=tools)
    assert kinds(third.output) == ["message"]
    assert "declined" in third.output_text


def test_stored_mcp_items_replay_to_another_provider(client: OpenAI, mcp_server: FakeServer) -> None:
    first = client.responses.create(model="claude", input="first", tools=[mcp_tool(mcp_server, "echo")])
    for model in ("gemini", "llama", "gpt"):
        nxt = client.responses.create(model=model, input="second", previous_response_id=first.id)
        assert nxt.output_text == "Echo (turns=2): second"
    answer = {"type": "mcp_approval_response", "approval_request_id": "mcpr_x", "approve": False}
    asked = {"type": "mcp_approval_request", "id": "mcpr_x", "server_label": "tools", "name": "echo",
             "arguments": '{"q": "stateless"}'}  # fmt: skip
    r = client.responses.create(model="llama", input=[asked, answer], tools=[mcp_tool(mcp_server, "echo")])
    assert "declined" in r.output_text  # an approval answered without a stored chain
    assert [i.type for i in client.responses.input_items.list(r.id).data][::-1] == [
        "mcp_approval_request", "mcp_approval_response"]  # fmt: skip


def test_tool_choice_can_force_a_server_tool(client: OpenAI, mcp_server: FakeServer) -> None:
    tools = [{**mcp_tool(mcp_server, "echo", "whoami"), "server_label": "s"}]
    choice = {"type": "mcp", "server_label": "s", "name": "whoami"}
    r = client.responses.create(model="claude", input="forced", tools=tools, tool_choice=choice)
    assert mcp_call(r).name == "whoami" and r.output_text.startswith("Echo (turns=1): tool said authorization:")


def test_an_upstream_failure_after_a_tool_call_fails_the_stream(
    client: OpenAI, mcp_server: FakeServer, anthropic_fake: FakeServer
) -> None:
    anthropic_fake.enqueue([{}, {"status": 529}])  # the first round calls the tool, the second is refused
    events = list(client.responses.create(model="claude", input="x", stream=True, tools=[mcp_tool(mcp_server, "echo")]))
    for event in events:
        valid(event.model_dump(mode="json", exclude_unset=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    failed = events[-1]
    assert failed.type == "response.failed" and "verloaded" in failed.response.error.message
    assert kinds(failed.response.output) == ["mcp_list_tools", "mcp_call"]
    assert client.responses.retrieve(failed.response.id).status == "failed"


def test_an_unknown_approval_request_is_a_400(client: OpenAI, mcp_server: FakeServer) -> None:
    answer = {"type": "mcp_approval_response", "approval_request_id": "mcpr_nope", "approve": True}
    with pytest.raises(openai.BadRequestError) as exc:
        client.responses.create(model="claude", input=[answer], tools=[mcp_tool(mcp_server, "echo")])
    assert "mcpr_nope" in exc.value.message


@pytest.mark.parametrize(
    ("tool", "kind", "says"),
    [
        ("fail", "mcp_tool_execution_error", "failed"),
        ("hang", "mcp_protocol_error", "did not answer within 2s"),
        ("huge", "mcp_tool_execution_error", "exceeds the limit of 50000 bytes"),
    ],
)
def test_server_errors_become_mcp_call_errors(client: OpenAI, mcp_server: FakeServer, tool: str, kind: str,
                                             says: str) -> None:  # fmt: skip
    events, r = streamed(client, model="claude", input="try", tools=[mcp_tool(mcp_server, tool)])
    call = mcp_call(r)
    assert r.status == "completed" and call.status == "failed" and call.output is None
    assert call.error.type == kind and says in json.dumps(call.error.model_dump())
    assert "response.mcp_call.failed" in [e.type for e in events]
    assert r.output_text.startswith("Echo (turns=1): tool said Error:")


def test_an_unreachable_server_is_a_failed_listing_and_the_model_still_answers(client: OpenAI) -> None:
    tool = {"type": "mcp", "server_label": "down", "require_approval": "never"}
    events, r = streamed(client, model="gemini", input="hi", tools=[tool])
    assert kinds(r.output) == ["mcp_list_tools", "message"]
    assert r.output[0].tools == [] and "could not be reached" in r.output[0].error
    assert "response.mcp_list_tools.failed" in [e.type for e in events]
    assert r.output_text == "Echo (turns=1): hi"


def test_allowed_tools_filter_the_listing(client: OpenAI, mcp_server: FakeServer) -> None:
    r = client.responses.create(model="claude", input="hi", tools=[mcp_tool(mcp_server, "nothing")])
    assert kinds(r.output) == ["mcp_list_tools", "message"] and r.output[0].tools == []
    every = client.responses.create(model="claude", input="hi", tools=[{**mcp_tool(mcp_server), "allowed_tools": None,
                                                                        "require_approval": "always"}])  # fmt: skip
    assert {t.name for t in every.output[0].tools} == {"echo", "whoami", "fail", "hang", "huge"}


def test_a_url_outside_the_config_is_a_400_naming_it(client: OpenAI) -> None:
    url = "http://127.0.0.1:9/elsewhere/mcp"
    with pytest.raises(openai.BadRequestError) as exc:
        client.responses.create(
            model="claude", input="x", tools=[{"type": "mcp", "server_label": "x", "server_url": url}]
        )
    assert url in exc.value.message and exc.value.body["param"] == "tools[0].server_url"
    with pytest.raises(openai.BadRequestError) as exc:
        client.responses.create(model="claude", input="x", tools=[{"type": "mcp", "server_label": "unknown"}])
    assert "unknown" in exc.value.message and exc.value.body["param"] == "tools[0]"


def test_a_native_openai_upstream_gets_the_mcp_tool_unchanged(
    client: OpenAI, openai_fake: FakeServer, mcp_server: FakeServer
) -> None:
    openai_fake.clear()
    tool = mcp_tool(mcp_server, "echo", headers={"X-Key": SECRET})
    r = client.responses.create(model="gpt", input="x", tools=[tool])
    sent = [r for r in openai_fake.requests() if r.get("path", "").endswith("/responses")][-1]
    assert sent["body"]["tools"] == [tool]
    assert SECRET not in client.responses.with_raw_response.retrieve(r.id).text  # the upstream's echo is not kept


def test_background_mode_runs_the_loop(client: OpenAI, mcp_server: FakeServer) -> None:
    r = client.responses.create(model="claude", input="later", background=True, tools=[mcp_tool(mcp_server, "echo")])
    assert [t.type for t in r.tools] == ["mcp"]
    deadline = time.monotonic() + 30
    while r.status in ("queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.05)
        r = client.responses.retrieve(r.id)
    assert kinds(r.output) == ["mcp_list_tools", "mcp_call", "message"]
    assert r.output_text == "Echo (turns=1): tool said mcp echo: later"
    resumed = list(client.responses.retrieve(r.id, stream=True, starting_after=-1))
    assert [e.sequence_number for e in resumed] == list(range(len(resumed)))
    assert "response.mcp_call.completed" in [e.type for e in resumed]


def test_websocket_mode_runs_the_loop(proxy: ProxyProcess, mcp_server: FakeServer) -> None:
    with connect(f"ws://127.0.0.1:{proxy.port}/v1/responses") as ws:
        ws.send(json.dumps({"type": "response.create", "model": "gemini", "input": "socket",
                            "tools": [mcp_tool(mcp_server, "echo")]}))  # fmt: skip
        events = []
        while not events or events[-1]["type"] not in ("response.completed", "response.failed", "error"):
            events.append(json.loads(ws.recv(timeout=30)))
    for event in events:
        valid(event)
    final = Response.model_validate(events[-1]["response"])
    assert kinds(final.output) == ["mcp_list_tools", "mcp_call", "message"]
    assert final.output_text == "Echo (turns=1): tool said mcp echo: socket"
