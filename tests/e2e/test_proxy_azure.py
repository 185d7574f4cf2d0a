"""Azure OpenAI and Azure AI Foundry through the proxy, driven by the openai SDK, against the
Azure-shaped fake: its three URL surfaces, api-key and Entra ID auth, and the background
lifecycle (GET, cancel, DELETE, resume) on the upstream's own state."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai import OpenAI

from tests.e2e.proxy_process import ProxyProcess, start_proxy, write_config
from tests.e2e.waits import finished
from tests.fakes.process import FakeServer, _request

VERSION = "2025-04-01-preview"
KEY = "azure-key"
ENTRA = "entra-token-1"
FOUNDRY_KEY = "foundry-key"
TOOL = {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}
# model_name -> (litellm_params beyond the model, the path and query the fake must see for a create)
DEPLOYMENTS: dict[str, tuple[dict[str, Any], str, dict[str, str]]] = {
    "scoped": ({"api_base": "/openai/deployments/gpt-4o", "api_version": VERSION, "api_key": KEY},
               "/openai/deployments/gpt-4o/responses", {"api-version": VERSION}),
    "dated": ({"api_version": VERSION, "api_key": KEY}, "/openai/responses", {"api-version": VERSION}),
    "v1": ({"api_key": KEY}, "/openai/v1/responses", {}),
    "entra": ({"api_version": VERSION, "azure_ad_token": ENTRA}, "/openai/responses", {"api-version": VERSION}),
    "foundry": ({"model": "azure_ai/gpt-4o", "api_base": "/api/projects/p1", "api_key": FOUNDRY_KEY},
                "/api/projects/p1/openai/v1/responses", {}),
}  # fmt: skip


@pytest.fixture(scope="module")
def proxy(azure_fake: FakeServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    for token in (ENTRA, FOUNDRY_KEY):  # the Foundry endpoint here takes its key as a bearer token
        _request("POST", azure_fake.root + "/_fake/entra_tokens", {"token": token})
    model_list = []
    for name, (params, _, _) in DEPLOYMENTS.items():
        litellm = {"model": "azure/gpt-4o", **params, "api_base": azure_fake.root + params.get("api_base", "")}
        model_list.append({"model_name": name, "litellm_params": litellm})
    bad = {"model": "azure/gpt-4o", "api_base": azure_fake.root, "api_key": "bad-key", "api_version": VERSION}
    model_list.append({"model_name": "bad", "litellm_params": bad})
    config = write_config({"model_list": model_list}, tmp_path_factory.mktemp("cfg"))
    with start_proxy("--config", str(config)) as p:
        yield p


@pytest.fixture
def client(proxy: ProxyProcess, azure_fake: FakeServer) -> OpenAI:
    azure_fake.reset()
    return OpenAI(base_url=proxy.url, api_key="k", max_retries=0)


@pytest.mark.parametrize("name", list(DEPLOYMENTS))
def test_text_and_stream_on_each_surface(client: OpenAI, azure_fake: FakeServer, name: str) -> None:
    plain = client.responses.create(model=name, input="same answer")
    with client.responses.stream(model=name, input="same answer") as stream:
        final = stream.get_final_response()
    assert plain.output_text == final.output_text == "Echo (turns=1): same answer"
    _, path, query = DEPLOYMENTS[name]
    sent = azure_fake.requests()
    assert [(r["path"], r["query"]) for r in sent] == [(path, query)] * 2
    headers = sent[0]["headers"]
    if name == "entra":
        assert headers["authorization"] == f"Bearer {ENTRA}" and "api-key" not in headers
    elif name == "foundry":
        assert headers["authorization"] == f"Bearer {FOUNDRY_KEY}"
    else:
        assert headers["api-key"] == KEY and "authorization" not in headers


@pytest.mark.parametrize("name", ["scoped", "dated", "v1"])
def test_tool_loop_continues_on_the_upstreams_state(client: OpenAI, azure_fake: FakeServer, name: str) -> None:
    first = client.responses.create(model=name, input="capital of France", tools=[TOOL])
    call = first.output[-1]
    assert call.type == "function_call" and json.loads(call.arguments) == {"q": "capital of France"}
    second = client.responses.create(
        model=name, tools=[TOOL], previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Paris"}],
    )  # fmt: skip
    assert second.output_text == "Echo (turns=1): tool said Paris"
    upstream_first = azure_fake.requests()[0]
    sent_previous = azure_fake.requests()[1]["body"]["previous_response_id"]
    assert sent_previous.startswith("resp_") and sent_previous != first.id  # the upstream's own id
    assert upstream_first["body"].get("previous_response_id") is None


@pytest.mark.parametrize("name", ["scoped", "dated", "entra"])
def test_background_get_cancel_and_delete_reach_the_upstream(client: OpenAI, azure_fake: FakeServer, name: str) -> None:
    queued = client.responses.create(model=name, input="later", background=True)
    assert queued.status == "queued"
    assert finished(lambda: client.responses.retrieve(queued.id)).output_text == "Echo (turns=1): later"
    azure_fake.enqueue({"background_delay": 30})
    slow = client.responses.create(model=name, input="slow", background=True)
    assert client.responses.cancel(slow.id).status == "cancelled"
    assert client.responses.retrieve(slow.id).status == "cancelled"
    client.responses.delete(queued.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(queued.id)
    _, create_path, query = DEPLOYMENTS[name]
    calls = [(r["method"], r["path"].removeprefix(create_path), r["query"]) for r in azure_fake.requests()]
    kinds = {(method, path.count("/"), path.endswith("/cancel")) for method, path, _ in calls}
    assert {("GET", 1, False), ("POST", 2, True), ("DELETE", 1, False)} <= kinds
    assert all(q == query for _, _, q in calls)  # every call carries the api-version of its surface


def test_a_background_stream_resumes_through_the_deployment_url(client: OpenAI, azure_fake: FakeServer) -> None:
    with client.responses.stream(model="scoped", input="resume me", background=True) as stream:
        first = next(iter(stream))
    response_id = first.response.id  # type: ignore[union-attr]
    finished(lambda: client.responses.retrieve(response_id))
    resumed = list(client.responses.retrieve(response_id, stream=True, starting_after=2))
    assert resumed[0].sequence_number == 3 and resumed[-1].type == "response.completed"
    last = azure_fake.requests()[-1]
    assert last["method"] == "GET" and last["query"] == {"api-version": VERSION, "stream": "true",
                                                        "starting_after": "2"}  # fmt: skip


def test_azure_errors_map_to_openai_statuses(client: OpenAI, azure_fake: FakeServer) -> None:
    with pytest.raises(openai.AuthenticationError) as exc:
        client.responses.create(model="bad", input="x")
    assert exc.value.body["type"] == "upstream_authentication_error"  # type: ignore[index]
    azure_fake.enqueue({"status": 429})
    with pytest.raises(openai.RateLimitError):
        client.responses.create(model="dated", input="x")


@pytest.mark.parametrize("name", ["scoped", "v1"])
def test_token_counting_and_compaction_reach_azure(client: OpenAI, azure_fake: FakeServer, name: str) -> None:
    assert client.responses.input_tokens.count(model=name, input="three words here").input_tokens > 0
    compacted = client.responses.compact(model=name, input="keep this")
    assert compacted.output[-1].type == "compaction"
    _, create_path, query = DEPLOYMENTS[name]
    sent = [(r["path"], r["query"]) for r in azure_fake.requests()]
    assert sent == [(create_path + "/input_tokens", query), (create_path + "/compact", query)]
