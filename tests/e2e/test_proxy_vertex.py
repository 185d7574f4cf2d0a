"""Vertex AI (Gemini and Claude) through the proxy, driven by the openai SDK, against the fake
Vertex upstream and its Google OAuth token endpoint."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI

from tests.e2e.proxy_process import ProxyProcess, run_cli, start_proxy, write_config
from tests.e2e.waits import finished
from tests.fakes.google_oauth import PROJECT, expire_tokens, service_account, tokens
from tests.fakes.process import FakeServer

TOOL = {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}
MODELS = {"gemini": "vertex_ai/gemini-2.5-flash", "claude": "vertex_ai/claude-sonnet-4-5"}
LOCATIONS = {"gemini": "us-central1", "claude": "us-east5"}
SHORT_LIFETIME = 6.0  # seconds: refreshed once less than a quarter of it is left


def entry(name: str, model: str, fake: FakeServer, **params: Any) -> dict[str, Any]:
    return {"model_name": name, "litellm_params": {"model": model, "api_base": fake.root, **params}}


@pytest.fixture(scope="module")
def accounts(vertex_fake: FakeServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("gcp")
    out = {}
    for name, lifetime in (("main", 3600.0), ("short", SHORT_LIFETIME), ("adc", 3600.0)):
        out[name] = folder / f"{name}.json"
        out[name].write_text(json.dumps(service_account(vertex_fake, token_lifetime=lifetime)))
    stranger = {**service_account(vertex_fake), "client_email": "nobody@llmrelay-test.iam.gserviceaccount.com"}
    out["stranger"] = folder / "stranger.json"  # a key Google does not know: its grants are refused
    out["stranger"].write_text(json.dumps(stranger))
    return out


@pytest.fixture(scope="module")
def proxy(
    vertex_fake: FakeServer, accounts: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    main = str(accounts["main"])
    model_list = [
        entry("gemini", MODELS["gemini"], vertex_fake, vertex_project=PROJECT, vertex_location="us-central1",
              vertex_credentials=main),
        # no vertex_project: the service-account file names it; the credentials come as JSON text
        entry("claude", MODELS["claude"], vertex_fake, vertex_location="us-east5",
              vertex_credentials="os.environ/VERTEX_SA_JSON"),
        entry("short", MODELS["gemini"], vertex_fake, vertex_location="europe-west4",
              vertex_credentials=str(accounts["short"])),
        entry("adc", MODELS["claude"], vertex_fake, vertex_location="global"),  # GOOGLE_APPLICATION_CREDENTIALS
        entry("stranger", MODELS["gemini"], vertex_fake, vertex_credentials=str(accounts["stranger"])),
    ]  # fmt: skip
    config = write_config({"model_list": model_list}, tmp_path_factory.mktemp("cfg"))
    env = {"VERTEX_SA_JSON": accounts["main"].read_text(), "GOOGLE_APPLICATION_CREDENTIALS": str(accounts["adc"])}
    with start_proxy("--config", str(config), env=env) as p:
        yield p


@pytest.fixture
def client(proxy: ProxyProcess, vertex_fake: FakeServer) -> OpenAI:
    vertex_fake.reset()
    return OpenAI(base_url=proxy.url, api_key="k", max_retries=0)


def api_calls(fake: FakeServer) -> list[dict[str, Any]]:
    return [r for r in fake.requests() if r["path"] != "/token"]


@pytest.mark.parametrize("model", list(MODELS))
def test_text_and_stream_reach_vertex_paths_with_a_google_token(
    client: OpenAI, vertex_fake: FakeServer, model: str
) -> None:
    plain = client.responses.create(model=model, input="same answer")
    with client.responses.stream(model=model, input="same answer") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert plain.output_text == final.output_text == "".join(deltas) == "Echo (turns=1): same answer"
    publisher, upstream = ("google", "gemini-2.5-flash") if model == "gemini" else ("anthropic", "claude-sonnet-4-5")
    base = f"/v1/projects/{PROJECT}/locations/{LOCATIONS[model]}/publishers/{publisher}/models/{upstream}"
    methods = ("generateContent", "streamGenerateContent") if model == "gemini" else ("rawPredict", "streamRawPredict")
    calls = api_calls(vertex_fake)
    assert [c["path"] for c in calls] == [f"{base}:{m}" for m in methods]
    issued = {t["token"] for t in tokens(vertex_fake)}
    assert all(c["headers"]["authorization"].removeprefix("Bearer ") in issued for c in calls)
    if model == "claude":
        assert calls[0]["body"]["anthropic_version"] == "vertex-2023-10-16" and "model" not in calls[0]["body"]
        assert calls[1]["body"]["stream"] is True


@pytest.mark.parametrize("model", list(MODELS))
def test_tools_reasoning_and_structured_output(client: OpenAI, model: str) -> None:
    first = client.responses.create(model=model, input="capital of France", tools=[TOOL])
    call = first.output[-1]
    assert call.type == "function_call" and json.loads(call.arguments) == {"q": "capital of France"}
    with client.responses.stream(
        model=model, tools=[TOOL], previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Paris"}],
    ) as stream:  # fmt: skip
        assert stream.get_final_response().output_text == "Echo (turns=1): tool said Paris"
    schema = {"type": "object", "properties": {"echo": {"type": "string"}}, "required": ["echo"]}
    r = client.responses.create(model=model, input="json please",
                                text={"format": {"type": "json_schema", "name": "r", "schema": schema}})  # fmt: skip
    assert "echo" in json.loads(r.output_text)
    r = client.responses.create(model=model, input="think", reasoning={"effort": "low", "summary": "auto"},
                                max_output_tokens=4000)  # fmt: skip
    assert r.output[0].type == "reasoning"


def test_a_conversation_moves_between_vertex_models(client: OpenAI) -> None:
    previous = None
    for turn, model in enumerate(["gemini", "claude", "gemini"], start=1):
        r = client.responses.create(model=model, input=f"turn {turn}", previous_response_id=previous)
        assert r.output_text == f"Echo (turns={turn}): turn {turn}"
        previous = r.id


@pytest.mark.parametrize("model", list(MODELS))
def test_background_runs_to_completion(client: OpenAI, model: str) -> None:
    queued = client.responses.create(model=model, input="later", background=True)
    assert queued.status == "queued"
    done = finished(lambda: client.responses.retrieve(queued.id))
    assert done.status == "completed" and done.output_text == "Echo (turns=1): later"


@pytest.mark.parametrize("model", list(MODELS))
def test_token_counting_uses_vertex_counters(client: OpenAI, vertex_fake: FakeServer, model: str) -> None:
    counted = client.responses.input_tokens.count(model=model, input="three words here")
    assert counted.input_tokens > 0
    path = api_calls(vertex_fake)[-1]["path"]
    assert path.endswith(":countTokens" if model == "gemini" else "/models/count-tokens:rawPredict")


def test_upstream_errors_map_to_openai_statuses(client: OpenAI, vertex_fake: FakeServer) -> None:
    vertex_fake.enqueue({"status": 429})
    with pytest.raises(openai.RateLimitError):
        client.responses.create(model="gemini", input="x")
    vertex_fake.enqueue({"status": 529})
    with pytest.raises(openai.InternalServerError) as exc:
        client.responses.create(model="claude", input="x")
    assert exc.value.status_code == 503


def test_a_token_refused_before_its_expiry_is_replaced(client: OpenAI, vertex_fake: FakeServer) -> None:
    client.responses.create(model="gemini", input="first")
    before = {t["token"] for t in tokens(vertex_fake)}
    expire_tokens(vertex_fake)  # revoked upstream while llmrelay still holds them
    assert client.responses.create(model="gemini", input="second").output_text == "Echo (turns=1): second"
    used = api_calls(vertex_fake)[-1]["headers"]["authorization"].removeprefix("Bearer ")
    assert used not in before


def test_a_short_lived_token_is_refreshed_mid_run(
    client: OpenAI, vertex_fake: FakeServer, accounts: dict[str, Path]
) -> None:
    email = json.loads(accounts["short"].read_text())["client_email"]
    client.responses.create(model="short", input="start")
    first = [t for t in tokens(vertex_fake) if t["client_email"] == email][-1]
    # Keep going until a request outlives the first token: every one must succeed on a live token.
    deadline = time.monotonic() + 30
    while time.time() < first["expires_at"] + 0.5:
        assert time.monotonic() < deadline
        assert client.responses.create(model="short", input="again").output_text == "Echo (turns=1): again"
    issued = [t for t in tokens(vertex_fake) if t["client_email"] == email]
    assert len(issued) >= 2
    # Replaced before it expired, not after the upstream refused it.
    assert issued[1]["issued_at"] < first["expires_at"]
    assert not [c for c in vertex_fake.requests() if c.get("status") == 401]
    last = api_calls(vertex_fake)[-1]
    assert last["headers"]["authorization"] == f"Bearer {issued[-1]['token']}"
    assert last["time"] < issued[-1]["expires_at"]


def test_application_default_credentials_and_the_global_location(client: OpenAI, vertex_fake: FakeServer) -> None:
    assert client.responses.create(model="adc", input="from adc").output_text == "Echo (turns=1): from adc"
    call = api_calls(vertex_fake)[-1]
    assert (
        call["path"]
        == f"/v1/projects/{PROJECT}/locations/global/publishers/anthropic/models/claude-sonnet-4-5:rawPredict"
    )


def test_a_vertex_deployment_without_a_project_stops_startup(vertex_fake: FakeServer, tmp_path: Path) -> None:
    model_list = [entry("gemini", MODELS["gemini"], vertex_fake)]
    unset = {"GOOGLE_APPLICATION_CREDENTIALS": "", "VERTEXAI_PROJECT": "", "GOOGLE_CLOUD_PROJECT": ""}
    result = run_cli("--config", str(write_config({"model_list": model_list}, tmp_path)), env=unset)
    assert result.returncode == 2
    assert "model_list[0].litellm_params.vertex_project" in result.stderr + result.stdout


def test_a_refused_token_grant_is_a_502_naming_the_credentials(client: OpenAI, proxy: ProxyProcess) -> None:
    with pytest.raises(openai.APIStatusError) as exc:
        client.responses.create(model="stranger", input="x")
    assert exc.value.status_code == 502
    assert exc.value.body["code"] == "credentials_refresh_failed"  # type: ignore[index]
    assert "vertex_credentials" in exc.value.message and "invalid_grant" not in exc.value.message
    assert "invalid_grant" in proxy.output()  # the detail is in the log


@pytest.mark.parametrize("model", list(MODELS))
def test_computer_use_reaches_vertex_in_each_models_form(client: OpenAI, vertex_fake: FakeServer, model: str) -> None:
    computer = {"type": "computer_use_preview", "display_width": 1024, "display_height": 768, "environment": "browser"}
    r = client.responses.create(model=model, input="open the page", tools=[computer])  # type: ignore[list-item]
    assert r.output[-1].type == "computer_call"
    sent = api_calls(vertex_fake)[-1]
    if model == "claude":
        assert sent["headers"]["anthropic-beta"].startswith("computer-use-")
        assert sent["body"]["tools"][0]["name"] == "computer"
    else:
        assert "computerUse" in sent["body"]["tools"][0]
