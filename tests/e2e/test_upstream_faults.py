"""Misbehaving upstreams, every adapter, through the real proxy and the official openai SDK:
garbage replies, truncation, cut connections, stalls, `data: [DONE]`, refused keys, and
clients that leave. Clients get OpenAI-shaped errors or a `response.failed` stream; the
detail goes to the proxy's log, never to the client."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai import OpenAI

from tests.e2e.proxy_process import ProxyProcess, start_proxy, write_config
from tests.e2e.waits import until_done, wait_for
from tests.fakes import bedrock_upstream as aws
from tests.fakes.google_oauth import service_account
from tests.fakes.process import FakeServer, free_port, reset_around

pytestmark = pytest.mark.filterwarnings("ignore:connect\\(\\) must be used:DeprecationWarning")

MODELS = {
    "gpt": "openai/gpt-4o",
    "llama": "groq/llama-3.3-70b",
    "claude": "anthropic/claude-sonnet-4-5",
    "gemini": "gemini/gemini-2.5-flash",
    "bedrock": "bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0",
    "vertex-gemini": "vertex_ai/gemini-2.5-flash",
    "vertex-claude": "vertex_ai/claude-sonnet-4-5",
    "azure": "azure/gpt-4o",
}
TOKEN_AUTH = ("vertex-gemini", "vertex-claude")
REAUTH = (*TOKEN_AUTH, "bedrock")  # refused credentials are renewed and tried once more
STALL = 1.5  # seconds: the "-impatient" deployments' timeout, the "-hasty" ones' stream_timeout
AWS_KEYS = {"aws_access_key_id": aws.ACCESS_KEY, "aws_secret_access_key": aws.SECRET_KEY}
LEAKS = ("Traceback", "aiohttp", "ClientPayloadError", "JSONDecodeError", "127.0.0.1", "localhost")


@pytest.fixture(scope="module")
def fakes(
    openai_fake: FakeServer,
    chat_fake: FakeServer,
    anthropic_fake: FakeServer,
    gemini_fake: FakeServer,
    bedrock_fake: FakeServer,
    vertex_fake: FakeServer,
    azure_fake: FakeServer,
) -> dict[str, FakeServer]:
    return {"gpt": openai_fake, "llama": chat_fake, "claude": anthropic_fake, "gemini": gemini_fake,
            "bedrock": bedrock_fake, "vertex-gemini": vertex_fake, "vertex-claude": vertex_fake,
            "azure": azure_fake}  # fmt: skip


@pytest.fixture(scope="module")
def proxy(fakes: dict[str, FakeServer], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    folder = tmp_path_factory.mktemp("faults")
    account = folder / "service-account.json"
    account.write_text(json.dumps(service_account(fakes["vertex-gemini"])))
    model_list: list[dict[str, Any]] = []
    for name, model in MODELS.items():
        params = {"model": model, "api_key": "k", "api_base": fakes[name].url}
        if name == "bedrock":
            params = {"model": model, "api_base": fakes[name].url, **AWS_KEYS}
        if name in TOKEN_AUTH:
            params = {"model": model, "api_base": fakes[name].url, "vertex_credentials": str(account)}
        model_list.append({"model_name": name, "litellm_params": params})
        model_list.append({"model_name": name + "-impatient", "litellm_params": {**params, "timeout": STALL}})
        model_list.append({"model_name": name + "-hasty", "litellm_params": {**params, "stream_timeout": STALL}})
    nowhere = {"model": MODELS["gpt"], "api_key": "k", "api_base": f"http://127.0.0.1:{free_port()}/v1"}
    model_list.append({"model_name": "nowhere", "litellm_params": nowhere})
    config = write_config({"model_list": model_list}, folder)
    with start_proxy("--config", str(config)) as p:
        yield p


@pytest.fixture(autouse=True)
def clean(fakes: dict[str, FakeServer]) -> Iterator[None]:
    yield from reset_around(fakes.values())


@pytest.fixture
def client(proxy: ProxyProcess) -> OpenAI:
    return OpenAI(base_url=proxy.url, api_key="k", max_retries=0, timeout=30)


def assert_clean(text: str) -> None:
    for leak in LEAKS:
        assert leak not in text


def stream_events(client: OpenAI, model: str) -> list[Any]:
    """The events of a streamed create, read with the SDK's stream helper (which insists on
    `response.created` first), ending with a clean close."""
    with client.responses.stream(model=model, input="hello") as stream:
        return list(stream)


# -- non-streamed ------------------------------------------------------------------------------


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("script", [{"raw_body": "<html>Bad Gateway</html>"}, {"truncate": True}, {"abort": True}])
def test_a_garbage_reply_is_a_502_naming_the_deployment(
    client: OpenAI, proxy: ProxyProcess, fakes: dict[str, FakeServer], model: str, script: dict
) -> None:
    fakes[model].enqueue(script)
    with pytest.raises(openai.APIStatusError) as caught:
        client.responses.create(model=model, input="hello")
    assert caught.value.status_code == 502
    message = caught.value.body["message"]
    assert f"deployment '{model}'" in message
    assert_clean(str(caught.value.body))
    assert "Traceback" not in proxy.output()
    # the proxy's log has what the client is not told
    assert wait_for(proxy.output, lambda out: f"deployment '{model}'" in out and ("reply" in out or "Payload" in out))


@pytest.mark.parametrize("model", list(MODELS))
def test_an_upstream_401_says_the_deployment_key_was_refused(
    client: OpenAI, fakes: dict[str, FakeServer], model: str
) -> None:
    fakes[model].enqueue([{"status": 401}] * (2 if model in REAUTH else 1))
    with pytest.raises(openai.AuthenticationError) as caught:
        client.responses.create(model=model, input="hello")
    assert caught.value.body["type"] == "upstream_authentication_error"
    assert f"deployment '{model}'" in caught.value.body["message"]
    what = "credentials" if model in REAUTH else "API key"
    assert f"refused the deployment's {what}" in caught.value.body["message"]


def test_an_unreachable_upstream_is_a_502_without_its_address(client: OpenAI, proxy: ProxyProcess) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        client.responses.create(model="nowhere", input="hello")
    assert caught.value.status_code == 502
    assert caught.value.body["message"] == "Could not reach the upstream of deployment 'nowhere' (openai/gpt-4o)."
    assert_clean(str(caught.value.body))
    assert wait_for(proxy.output, lambda out: "Cannot connect" in out)  # the detail is logged


@pytest.mark.parametrize("model", list(MODELS))
def test_an_upstream_that_never_answers_is_a_504(client: OpenAI, fakes: dict[str, FakeServer], model: str) -> None:
    fakes[model].enqueue({"hang": True})
    with pytest.raises(openai.APIStatusError) as caught:
        client.responses.create(model=model + "-impatient", input="hello")
    assert caught.value.status_code == 504
    assert caught.value.body["type"] == "timeout_error"
    assert f"deployment '{model}-impatient'" in caught.value.body["message"]
    # the stalled upstream connection was closed, not left hanging
    requests = wait_for(fakes[model].requests, lambda rs: rs and rs[-1].get("disconnected"))
    assert requests[-1]["disconnected"] is True


def test_a_client_that_leaves_cancels_the_upstream_call(proxy: ProxyProcess, fakes: dict[str, FakeServer]) -> None:
    fakes["gpt"].enqueue({"hang": True})  # held for the default 600 s unless the proxy lets go
    body = json.dumps({"model": "gpt", "input": "hello"}).encode()
    head = f"POST /v1/responses HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
    with socket.create_connection(("127.0.0.1", proxy.port)) as client:
        client.sendall(head.encode() + b"\r\n\r\n" + body)
        assert wait_for(fakes["gpt"].requests, bool)  # the upstream call is under way
    requests = wait_for(fakes["gpt"].requests, lambda rs: rs[-1].get("disconnected"))
    assert requests[-1]["disconnected"] is True


# -- streamed ----------------------------------------------------------------------------------


@pytest.mark.parametrize("model", list(MODELS))
def test_done_after_the_terminal_event_is_ignored(
    client: OpenAI, proxy: ProxyProcess, fakes: dict[str, FakeServer], model: str
) -> None:
    fakes[model].enqueue({"done": True})
    events = stream_events(client, model)
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert client.responses.retrieve(events[-1].response.id).status == "completed"
    assert "Traceback" not in proxy.output()


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize(
    "script",
    [
        {"raw_frame_after_events": 0},
        {"raw_frame_after_events": 1},
        {"truncate": True},
        {"abort": True},
        {"drop_after_events": 2},
    ],
)
def test_a_broken_stream_starts_with_created_and_ends_failed(
    client: OpenAI, proxy: ProxyProcess, fakes: dict[str, FakeServer], model: str, script: dict
) -> None:
    fakes[model].enqueue(script)
    events = stream_events(client, model)
    assert events[0].type == "response.created"
    assert events[-1].type == "response.failed"
    failed = events[-1].response
    assert f"deployment '{model}'" in failed.error.message or "closed the stream" in failed.error.message
    assert_clean(failed.error.message)
    assert client.responses.retrieve(failed.id).status == "failed"
    assert "Traceback" not in proxy.output()


@pytest.mark.parametrize("model", list(MODELS))
def test_a_stream_that_never_starts_is_a_504(client: OpenAI, fakes: dict[str, FakeServer], model: str) -> None:
    fakes[model].enqueue({"hang": True})
    with pytest.raises(openai.APIStatusError) as caught:
        stream_events(client, model + "-hasty")
    assert caught.value.status_code == 504
    assert caught.value.body["type"] == "timeout_error"


@pytest.mark.parametrize("model", list(MODELS))
def test_a_stream_that_stalls_midway_fails_and_closes_the_upstream(
    client: OpenAI, fakes: dict[str, FakeServer], model: str
) -> None:
    fakes[model].enqueue({"hang_after_events": 2})
    events = stream_events(client, model + "-hasty")
    assert events[0].type == "response.created" and events[-1].type == "response.failed"
    assert "did not answer in time" in events[-1].response.error.message
    requests = wait_for(fakes[model].requests, lambda rs: rs and rs[-1].get("disconnected"))
    assert requests[-1]["disconnected"] is True


@pytest.mark.parametrize("model", ["llama", "claude", "gemini", "bedrock", "vertex-gemini", "vertex-claude"])
def test_a_background_job_whose_upstream_stalls_ends_failed(
    client: OpenAI, fakes: dict[str, FakeServer], model: str
) -> None:
    fakes[model].enqueue({"hang_after_events": 1})
    queued = client.responses.create(model=model + "-hasty", input="hello", background=True)
    final = wait_for(lambda: client.responses.retrieve(queued.id), lambda r: r.status not in ("queued", "in_progress"))
    assert final.status == "failed"
    assert "did not answer in time" in final.error.message


# -- WebSocket -----------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["gpt", "claude"])
def test_a_websocket_survives_done_garbage_and_stalls(client: OpenAI, fakes: dict[str, FakeServer], model: str) -> None:
    fakes[model].enqueue([{"done": True}, {"raw_frame_after_events": 2}, {"hang": True}, {}])
    with client.responses.connect() as conn:
        conn.send({"type": "response.create", "model": model, "input": "one", "store": False})
        first = until_done(conn)
        assert first[0].type == "response.created" and first[-1].type == "response.completed"
        conn.send({"type": "response.create", "model": model, "input": "two", "store": False})
        second = until_done(conn)
        assert second[0].type == "response.created" and second[-1].type == "response.failed"
        conn.send({"type": "response.create", "model": model + "-hasty", "input": "three", "store": False})
        third = until_done(conn)
        assert third[-1].type == "error" and third[-1].error.type == "timeout_error"
        conn.send({"type": "response.create", "model": model, "input": "four", "store": False})
        fourth = until_done(conn)
        assert fourth[-1].type == "response.completed"
        assert fourth[-1].response.output_text.endswith("four")
