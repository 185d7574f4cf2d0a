"""WebSocket mode of /v1/responses, driven by the openai SDK's responses.connect()."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import pytest
from openai import OpenAI
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.e2e.proxy_process import ProxyProcess, start_proxy, write_config
from tests.e2e.waits import until_done
from tests.fakes.process import FakeServer

# The openai SDK's own WebSocket plumbing warns about a websockets API it uses internally.
pytestmark = pytest.mark.filterwarnings("ignore:connect\\(\\) must be used:DeprecationWarning")


@pytest.fixture(scope="module")
def proxy(openai_fake: FakeServer, anthropic_fake: FakeServer, tmp_path_factory) -> Iterator[ProxyProcess]:
    config = {"model_list": [
        {"model_name": "gpt", "litellm_params": {"model": "openai/gpt-4o", "api_key": "k",
                                                 "api_base": openai_fake.url}},
        {"model_name": "claude", "litellm_params": {"model": "anthropic/claude-sonnet-4-5", "api_key": "k",
                                                    "api_base": anthropic_fake.url}},
    ], "general_settings": {"master_key": "sk-master"}}  # fmt: skip
    with start_proxy("--config", str(write_config(config, tmp_path_factory.mktemp("ws")))) as p:
        yield p


@pytest.mark.parametrize("model", ["gpt", "claude"])
def test_responses_over_a_websocket(proxy: ProxyProcess, model: str) -> None:
    client = OpenAI(base_url=proxy.url, api_key="sk-master", max_retries=0)
    with client.responses.connect() as conn:
        # Codex sends client_metadata with every frame
        conn.send({"type": "response.create", "model": model, "input": "hello", "store": False,
                   "client_metadata": {"originator": "codex_exec"}})  # fmt: skip
        first = until_done(conn)
        assert first[0].type == "response.created" and first[-1].type == "response.completed"
        assert [e.sequence_number for e in first] == list(range(len(first)))
        response = first[-1].response
        assert response.output_text == "Echo (turns=1): hello"
        # store=false: continued from this connection's memory
        conn.send({"type": "response.create", "model": model, "input": "again", "store": False,
                   "previous_response_id": response.id})  # fmt: skip
        second = until_done(conn)
        assert second[-1].response.output_text == "Echo (turns=2): again"
        # a stored response is continued from the store
        conn.send({"type": "response.create", "model": model, "input": "kept"})
        kept = until_done(conn)[-1].response
        assert client.responses.retrieve(kept.id).output_text == "Echo (turns=1): kept"
        # bad requests are error events; the socket stays usable
        conn.send({"type": "response.create", "model": "no-such-model", "input": "x"})
        error = until_done(conn)[-1]
        assert error.type == "error" and error.error.code == "model_not_found" and error.status == 404
    with client.responses.connect() as other:  # another socket does not see the first one's memory
        other.send({"type": "response.create", "model": model, "input": "x", "store": False,
                    "previous_response_id": response.id})  # fmt: skip
        error = until_done(other)[-1]
        assert error.type == "error" and error.error.code == "previous_response_not_found"


def test_a_failed_continuation_evicts_the_response(proxy: ProxyProcess, anthropic_fake: FakeServer) -> None:
    client = OpenAI(base_url=proxy.url, api_key="sk-master", max_retries=0)
    with client.responses.connect() as conn:
        conn.send({"type": "response.create", "model": "claude", "input": "hello", "store": False})
        response = until_done(conn)[-1].response
        anthropic_fake.enqueue({"status": 500})
        conn.send({"type": "response.create", "model": "claude", "input": "x", "store": False,
                   "previous_response_id": response.id})  # fmt: skip
        assert until_done(conn)[-1].type == "error"
        conn.send({"type": "response.create", "model": "claude", "input": "x", "store": False,
                   "previous_response_id": response.id})  # fmt: skip
        error = until_done(conn)[-1]
        assert error.error.code == "previous_response_not_found"


def test_websocket_needs_the_key(proxy: ProxyProcess) -> None:
    client = OpenAI(base_url=proxy.url, api_key="wrong", max_retries=0)
    with pytest.raises(InvalidStatus) as refused, client.responses.connect() as conn:
        conn.send({"type": "response.create", "model": "gpt", "input": "x"})
        until_done(conn)
    answer = refused.value.response
    assert answer.status_code == 401  # the upgrade is answered in HTTP, as any other route
    assert json.loads(answer.body)["error"]["code"] == "invalid_api_key"


def test_a_binary_frame_is_a_400_error_event_and_the_socket_stays_open(proxy: ProxyProcess) -> None:
    url = f"ws://127.0.0.1:{proxy.port}/v1/responses"
    with connect(url, additional_headers={"authorization": "Bearer sk-master"}) as ws:
        ws.send(json.dumps({"type": "response.create", "model": "gpt", "input": "x"}).encode())
        error = json.loads(ws.recv(timeout=10))
        assert error["type"] == "error" and error["status"] == 400
        assert error["error"]["code"] == "invalid_frame" and "text frame" in error["error"]["message"]
        ws.send(json.dumps({"type": "response.create", "model": "gpt", "input": "still here"}))
        while (event := json.loads(ws.recv(timeout=10)))["type"] != "response.completed":
            assert event["type"] != "error"
        assert event["response"]["output"][0]["content"][0]["text"] == "Echo (turns=1): still here"


def _admin(proxy: ProxyProcess, path: str, body: dict) -> dict:
    headers = {"authorization": "Bearer sk-master", "content-type": "application/json"}
    req = urllib.request.Request(proxy.root + path, json.dumps(body).encode(), method="POST", headers=headers)
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=10) as r:
        return json.loads(r.read())


def test_a_key_deleted_while_its_socket_is_open_stops_working_on_that_socket(proxy: ProxyProcess) -> None:
    key = _admin(proxy, "/key/generate", {})["key"]
    client = OpenAI(base_url=proxy.url, api_key=key, max_retries=0)
    with client.responses.connect() as conn:
        conn.send({"type": "response.create", "model": "gpt", "input": "before"})
        assert until_done(conn)[-1].type == "response.completed"
        assert _admin(proxy, "/key/delete", {"keys": [key]})["deleted_keys"] == [key]
        conn.send({"type": "response.create", "model": "gpt", "input": "after"})
        error = until_done(conn)[-1]
        assert error.type == "error" and error.error.code == "invalid_api_key"
        assert error.status == 401
