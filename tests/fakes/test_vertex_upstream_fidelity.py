"""The fake Vertex AI upstream, driven by google-genai (vertexai=True) and the anthropic SDK's
AnthropicVertex, both authenticating with a service account against the fake's token endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from anthropic import AnthropicVertex
from google import genai
from google.auth.transport.requests import Request as GoogleRequest
from google.genai import errors, types
from google.oauth2 import service_account as google_sa

from tests.fakes import FakeServer, start_fake
from tests.fakes.google_oauth import PROJECT, expire_tokens, service_account, tokens

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
LOOKUP = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name="lookup", parameters_json_schema={"type": "object", "properties": {"q": {"type": "string"}}}
        )
    ]
)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeServer]:
    with start_fake("tests.fakes.vertex_upstream") as server:
        yield server


@pytest.fixture(autouse=True)
def fresh(fake: FakeServer) -> None:
    fake.reset()


@pytest.fixture(scope="module")
def account(fake: FakeServer) -> dict[str, Any]:
    return service_account(fake)


def credentials(info: dict[str, Any]) -> google_sa.Credentials:
    return google_sa.Credentials.from_service_account_info(info, scopes=SCOPES)


def gemini(fake: FakeServer, info: dict[str, Any], location: str = "us-central1") -> genai.Client:
    options = types.HttpOptions(base_url=fake.root, api_version="v1")
    return genai.Client(vertexai=True, project=PROJECT, location=location, credentials=credentials(info),
                        http_options=options)  # fmt: skip


def claude(fake: FakeServer, info: dict[str, Any]) -> AnthropicVertex:
    return AnthropicVertex(region="us-east5", project_id=PROJECT, credentials=credentials(info),
                           base_url=fake.root + "/v1", max_retries=0)  # fmt: skip


def test_google_genai_generates_streams_and_counts_under_vertex_paths(
    fake: FakeServer, account: dict[str, Any]
) -> None:
    client = gemini(fake, account)
    assert client.models.generate_content(model="gemini-2.0-flash", contents="hello").text == "Echo (turns=1): hello"
    chunks = list(client.models.generate_content_stream(model="gemini-2.0-flash", contents="hi there"))
    assert "".join(c.text or "" for c in chunks) == "Echo (turns=1): hi there"
    assert client.models.count_tokens(model="gemini-2.0-flash", contents="two words").total_tokens == 2
    paths = [r["path"] for r in fake.requests() if r["path"] != "/token"]
    base = f"/v1/projects/{PROJECT}/locations/us-central1/publishers/google/models/gemini-2.0-flash"
    assert paths == [f"{base}:generateContent", f"{base}:streamGenerateContent", f"{base}:countTokens"]
    issued = {t["token"] for t in tokens(fake)}
    assert all(r["headers"]["authorization"].removeprefix("Bearer ") in issued for r in fake.requests()[1:])


def test_google_genai_function_calls(fake: FakeServer, account: dict[str, Any]) -> None:
    client, config = gemini(fake, account), types.GenerateContentConfig(tools=[LOOKUP])
    reply = client.models.generate_content(model="gemini-2.0-flash", contents="Paris?", config=config)
    call = reply.function_calls[0]
    assert (call.name, call.args) == ("lookup", {"q": "Paris?"})


def test_the_wrapped_count_body_of_the_gemini_api_is_refused(fake: FakeServer, account: dict[str, Any]) -> None:
    token = credentials(account)
    token.refresh(GoogleRequest())
    url = f"{fake.root}/v1/projects/p/locations/l/publishers/google/models/gemini-2.0-flash:countTokens"
    body = {"generateContentRequest": {"contents": [{"role": "user", "parts": [{"text": "x"}]}]}}
    reply = httpx.post(url, json=body, headers={"authorization": f"Bearer {token.token}"})
    assert reply.status_code == 400 and "generateContentRequest" in reply.json()["error"]["message"]


def test_an_expired_or_missing_token_is_unauthenticated(fake: FakeServer, account: dict[str, Any]) -> None:
    client = gemini(fake, account)
    client.models.generate_content(model="gemini-2.0-flash", contents="first")
    expire_tokens(fake)
    with pytest.raises(errors.ClientError) as exc:
        client.models.generate_content(model="gemini-2.0-flash", contents="again")
    assert exc.value.code == 401 and exc.value.status == "UNAUTHENTICATED"
    url = f"{fake.root}/v1/projects/p/locations/l/publishers/google/models/gemini-2.0-flash:generateContent"
    assert httpx.post(url, json={"contents": []}).status_code == 401


def test_a_grant_signed_by_another_key_is_refused(fake: FakeServer, account: dict[str, Any]) -> None:
    impostor = {**service_account(fake), "client_email": account["client_email"]}  # someone else's key
    with pytest.raises(Exception, match="invalid_grant"):
        credentials(impostor).refresh(GoogleRequest())


def test_anthropic_vertex_creates_streams_and_counts(fake: FakeServer, account: dict[str, Any]) -> None:
    client = claude(fake, account)
    messages = [{"role": "user", "content": "hello"}]
    message = client.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=messages)  # type: ignore[arg-type]
    assert message.content[0].text == "Echo (turns=1): hello"  # type: ignore[union-attr]
    with client.messages.stream(model="claude-sonnet-4-6", max_tokens=100, messages=messages) as stream:  # type: ignore[arg-type]
        assert "".join(stream.text_stream) == "Echo (turns=1): hello"
    assert client.messages.count_tokens(model="claude-sonnet-4-6", messages=messages).input_tokens > 0  # type: ignore[arg-type]
    base = f"/v1/projects/{PROJECT}/locations/us-east5/publishers/anthropic/models"
    paths = [r["path"] for r in fake.requests() if r["path"] != "/token"]
    assert paths == [f"{base}/claude-sonnet-4-6:rawPredict", f"{base}/claude-sonnet-4-6:streamRawPredict",
                     f"{base}/count-tokens:rawPredict"]  # fmt: skip
    created = fake.requests()[-3]["body"]
    assert "model" not in created and created["anthropic_version"]


def test_a_claude_body_without_anthropic_version_or_with_model_is_refused(
    fake: FakeServer, account: dict[str, Any]
) -> None:
    token = credentials(account)
    token.refresh(GoogleRequest())
    url = f"{fake.root}/v1/projects/p/locations/l/publishers/anthropic/models/claude-sonnet-4-6:rawPredict"
    headers = {"authorization": f"Bearer {token.token}"}
    body: dict[str, Any] = {"max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}
    missing = httpx.post(url, json=body, headers=headers)
    assert missing.status_code == 400 and "anthropic_version" in missing.json()["error"]["message"]
    named = httpx.post(url, json={**body, "anthropic_version": "vertex-2023-10-16", "model": "m"}, headers=headers)
    assert named.status_code == 400 and "model" in named.json()["error"]["message"]
    ok = httpx.post(url, json={**body, "anthropic_version": "vertex-2023-10-16"}, headers=headers)
    assert ok.status_code == 200 and ok.json()["model"] == "claude-sonnet-4-6"
