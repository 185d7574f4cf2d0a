"""The fake Azure OpenAI upstream, driven by the openai SDK's AzureOpenAI client (and the plain
client on the v1 surface): if the SDK is happy, the paths and auth are Azure's."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest
from openai import AzureOpenAI, OpenAI

from tests.fakes import FakeServer, start_fake
from tests.fakes.process import _request

VERSION = "2025-04-01-preview"
KEY = "azure-key"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeServer]:
    with start_fake("tests.fakes.azure_upstream", background_delay=0.3) as server:
        yield server


@pytest.fixture(autouse=True)
def fresh(fake: FakeServer) -> None:
    fake.reset()


def test_the_dated_api_with_an_api_key(fake: FakeServer) -> None:
    client = AzureOpenAI(api_key=KEY, api_version=VERSION, azure_endpoint=fake.root, max_retries=0)
    created = client.responses.create(model="gpt-4o", input="hello")
    assert created.output_text == "Echo (turns=1): hello"
    with client.responses.stream(model="gpt-4o", input="again", previous_response_id=created.id) as stream:
        assert stream.get_final_response().output_text == "Echo (turns=2): again"
    assert client.responses.retrieve(created.id).status == "completed"
    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    first = fake.requests()[0]
    assert (first["path"], first["query"], first["headers"]["api-key"]) == (
        "/openai/responses",
        {"api-version": VERSION},
        KEY,
    )
    assert "authorization" not in first["headers"]


def test_background_cancel_on_the_deployment_scoped_url(fake: FakeServer) -> None:
    base = f"{fake.root}/openai/deployments/my-gpt"
    client = AzureOpenAI(api_key=KEY, api_version=VERSION, base_url=base, max_retries=0)
    queued = client.responses.create(model="ignored", input="slow", background=True)
    assert queued.status == "queued" and queued.model == "my-gpt"
    assert client.responses.cancel(queued.id).status == "cancelled"
    scoped = "/openai/deployments/my-gpt/responses"
    assert [r["path"] for r in fake.requests()] == [scoped, f"{scoped}/{queued.id}/cancel"]


def test_the_v1_surface_needs_no_api_version(fake: FakeServer) -> None:
    client = OpenAI(api_key="unused", base_url=f"{fake.root}/openai/v1/", default_headers={"api-key": KEY})
    assert client.responses.create(model="gpt-4o", input="v1").output_text == "Echo (turns=1): v1"
    assert fake.requests()[0]["query"] == {}


def test_entra_id_bearer_tokens(fake: FakeServer) -> None:
    _request("POST", fake.root + "/_fake/entra_tokens", {"token": "entra-token"})
    client = AzureOpenAI(azure_ad_token="entra-token", api_version=VERSION, azure_endpoint=fake.root, max_retries=0)
    assert client.responses.create(model="gpt-4o", input="signed").output_text == "Echo (turns=1): signed"
    stranger = AzureOpenAI(azure_ad_token="unknown", api_version=VERSION, azure_endpoint=fake.root, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        stranger.responses.create(model="gpt-4o", input="x")


def test_azure_errors(fake: FakeServer) -> None:
    bad = AzureOpenAI(api_key="bad-key", api_version=VERSION, azure_endpoint=fake.root, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as exc:
        bad.responses.create(model="gpt-4o", input="x")
    assert exc.value.body["code"] == "401"  # type: ignore[index]
    assert httpx.post(f"{fake.root}/openai/responses", headers={"api-key": KEY}, json={}).status_code == 404
    wrong = httpx.post(f"{fake.root}/openai/responses?api-version=v2", headers={"api-key": KEY}, json={})
    assert wrong.status_code == 400
    fake.enqueue({"status": 429})
    client = AzureOpenAI(api_key=KEY, api_version=VERSION, azure_endpoint=fake.root, max_retries=0)
    with pytest.raises(openai.RateLimitError):
        client.responses.create(model="gpt-4o", input="x")
