"""Cloud providers' addresses and tokens: Vertex AI hosts and publisher paths, Azure's URL
shapes and auth headers, and the Google token cache (refresh timing, one refresh at a time,
off the event loop)."""

from __future__ import annotations

import asyncio
import builtins
import datetime
import threading
from dataclasses import replace
from typing import Any

import openai
import pytest

from llmrelay.config import ConfigError, parse_config
from llmrelay.providers import tokens
from llmrelay.providers.cloud import azure_ai_url, vertex_host
from llmrelay.providers.registry import make_deployment, require_key, stored_deployment


def vertex(model: str, **settings: Any) -> Any:
    return make_deployment(model, cloud_settings={"vertex_project": "p", **settings})


def test_vertex_hosts_and_publisher_paths() -> None:
    assert vertex_host("us-central1", None) == "https://us-central1-aiplatform.googleapis.com/v1"
    assert vertex_host("global", None) == "https://aiplatform.googleapis.com/v1"
    assert vertex_host("global", "http://10.0.0.1:8080/") == "http://10.0.0.1:8080/v1"
    assert vertex_host("global", "https://psc.example/v1beta1") == "https://psc.example/v1beta1"
    gemini = vertex("vertex_ai/gemini-2.5-pro", vertex_location="europe-west4")
    assert gemini.provider.api == "vertex_gemini"
    assert gemini.api_base == (
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/p/locations/europe-west4/publishers/google"
    )
    claude = vertex("vertex_ai/claude-opus-4-5")
    assert claude.provider.api == "vertex_anthropic"
    assert claude.api_base.endswith("/v1/projects/p/locations/us-central1/publishers/anthropic")
    assert claude.auth_headers() == {} and claude.credentials is not None


def test_vertex_accounts_and_locations_are_separate_deployments() -> None:
    ids = {vertex("vertex_ai/gemini-2.5-pro", vertex_location=loc).id for loc in ("us-central1", "global")}
    ids.add(vertex("vertex_ai/gemini-2.5-pro", vertex_credentials='{"type": "service_account"}').id)
    assert len(ids) == 3


def test_a_vertex_deployment_needs_a_project(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VERTEXAI_PROJECT", "VERTEX_PROJECT", "GOOGLE_CLOUD_PROJECT", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(openai.BadRequestError) as exc:
        make_deployment("vertex_ai/gemini-2.5-pro")
    assert exc.value.body["param"] == "vertex_project"  # type: ignore[index]


def test_unreadable_vertex_credentials_are_a_clear_400(tmp_path: Any) -> None:
    with pytest.raises(openai.BadRequestError, match="cannot read the credentials file"):
        vertex("vertex_ai/gemini-2.5-pro", vertex_credentials=str(tmp_path / "missing.json"))
    with pytest.raises(openai.BadRequestError, match="neither a service-account JSON"):
        vertex("vertex_ai/gemini-2.5-pro", vertex_credentials="{not json")


def test_without_google_auth_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_google(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("google.auth"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_google)
    with pytest.raises(openai.BadRequestError, match=r"llmrelay\[vertex\]"):
        vertex("vertex_ai/gemini-2.5-pro")


def test_azure_auth_headers() -> None:
    base = "https://r.openai.azure.com"
    assert make_deployment("azure/d", api_base=base, api_key="k").auth_headers() == {"api-key": "k"}
    entra = make_deployment("azure/d", api_base=base, cloud_settings={"azure_ad_token": "t"})
    assert entra.auth_headers() == {"authorization": "Bearer t"}


def test_azure_ai_foundry_urls_and_auth() -> None:
    assert azure_ai_url("https://r.services.ai.azure.com", "/responses") == (
        "https://r.services.ai.azure.com/openai/v1/responses"
    )
    project = "https://r.services.ai.azure.com/api/projects/p1"
    assert azure_ai_url(project + "/openai/v1", "/responses/x/cancel") == f"{project}/openai/v1/responses/x/cancel"
    assert azure_ai_url("https://r.services.ai.azure.com/models", "/responses").endswith(".com/openai/v1/responses")
    on_azure = make_deployment("azure_ai/gpt-5", api_base=project, api_key="k")
    assert on_azure.auth_headers() == {"api-key": "k"}
    elsewhere = make_deployment("azure_ai/gpt-5", api_base="https://serverless.example", api_key="k")
    assert elsewhere.auth_headers() == {"authorization": "Bearer k"}


def test_cloud_keys_are_config_fields_not_refused(tmp_path: Any) -> None:
    config = parse_config({"model_list": [{"model_name": "g", "litellm_params": {
        "model": "vertex_ai/gemini-2.5-pro", "vertex_project": "p", "vertex_location": "global"}}]})  # fmt: skip
    assert "/locations/global/" in config.deployments()[0].api_base
    with pytest.raises(ConfigError, match=r"litellm_params\.vertex_credentials"):
        parse_config({"model_list": [{"model_name": "g", "litellm_params": {
            "model": "vertex_ai/gemini-2.5-pro", "vertex_project": "p",
            "vertex_credentials": str(tmp_path / "none.json")}}]})  # fmt: skip


# -- the Google token cache ------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class FakeCredentials:
    """google-auth's Credentials surface: refresh(request) sets token and (naive UTC) expiry."""

    def __init__(self, clock: Clock, lifetime: float, gate: threading.Event | None = None) -> None:
        self.clock, self.lifetime, self.gate = clock, lifetime, gate
        self.refreshes = 0
        self.token: str | None = None
        self.expiry: datetime.datetime | None = None

    def refresh(self, request: Any) -> None:
        if self.gate is not None:
            assert self.gate.wait(10)
        self.refreshes += 1
        self.token = f"token-{self.refreshes}"
        until = datetime.datetime.fromtimestamp(self.clock() + self.lifetime, datetime.UTC)
        self.expiry = until.replace(tzinfo=None)


async def test_a_token_is_reused_until_near_expiry_then_refreshed() -> None:
    clock = Clock()
    creds = FakeCredentials(clock, lifetime=3600)
    source = tokens.GoogleToken(lambda: creds, clock=clock)
    assert await source.token() == "token-1"
    clock.now += 3600 - tokens.REFRESH_MARGIN - 1
    assert await source.token() == "token-1"
    clock.now += 2  # now inside the margin: replaced before it expires
    assert await source.token() == "token-2"
    source.refused({"authorization": "Bearer token-2"})
    assert await source.token() == "token-3"
    source.refused({"authorization": "Bearer token-1"})  # an old token's refusal changes nothing
    assert await source.token() == "token-3"


async def test_a_short_lived_token_is_refreshed_with_a_quarter_left() -> None:
    clock = Clock()
    source = tokens.GoogleToken(lambda: FakeCredentials(clock, lifetime=8), clock=clock)
    assert await source.token() == "token-1"
    clock.now += 5.9
    assert await source.token() == "token-1"
    clock.now += 0.2
    assert await source.token() == "token-2"


async def test_one_refresh_at_a_time_and_the_loop_keeps_running() -> None:
    clock, gate = Clock(), threading.Event()
    creds = FakeCredentials(clock, lifetime=3600, gate=gate)
    source = tokens.GoogleToken(lambda: creds, clock=clock)
    waiters = [asyncio.ensure_future(source.token()) for _ in range(20)]
    ticks = 0
    while ticks < 10:  # the refresh blocks its thread, not this loop
        await asyncio.sleep(0)
        ticks += 1
    assert not any(w.done() for w in waiters)
    gate.set()
    assert set(await asyncio.gather(*waiters)) == {"token-1"}
    assert creds.refreshes == 1


async def test_a_failed_refresh_is_a_502_and_the_next_call_tries_again() -> None:
    clock = Clock()
    attempts = []

    def load() -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("token endpoint unreachable")
        return FakeCredentials(clock, lifetime=3600)

    source = tokens.GoogleToken(load, clock=clock)
    with pytest.raises(openai.APIStatusError) as exc:
        await source.token()
    assert exc.value.status_code == 502 and "unreachable" not in exc.value.message
    assert await source.token() == "token-1"


def test_azure_without_key_or_token_names_every_way_to_authenticate(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AZURE_API_KEY", "AZURE_OPENAI_API_KEY", "AZURE_AD_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    dep = make_deployment("azure/d", api_base="https://r.openai.azure.com")
    if dep.credentials is None:  # azure-identity not installed
        with pytest.raises(openai.AuthenticationError, match=r"azure_ad_token, or install azure-identity"):
            require_key(dep)
    else:
        require_key(dep)  # signed by azure-identity's credentials instead


async def test_entra_tokens_from_an_azure_identity_credential() -> None:
    class Credential:  # azure-identity's async TokenCredential surface
        def __init__(self) -> None:
            self.scopes: list[str] = []

        async def get_token(self, *scopes: str) -> Any:
            self.scopes += scopes
            return type("AccessToken", (), {"token": "entra-1", "expires_on": 0})()

    credential = Credential()
    source = tokens.AzureIdentityToken(credential)
    assert await source.headers() == {"authorization": "Bearer entra-1"}
    assert credential.scopes == ["https://cognitiveservices.azure.com/.default"]


def test_a_stored_response_elsewhere_keeps_the_deployments_token_credentials() -> None:
    known = replace(make_deployment("azure/d", api_base="https://a.openai.azure.com", api_key="k"), api_key=None,
                    credentials=tokens.AzureIdentityToken(object()))  # fmt: skip
    moved = stored_deployment(known, "d", {"api_base": "https://b.openai.azure.com"})
    assert moved is not None and moved.credentials is known.credentials
    keyed = stored_deployment(known, "d", {"api_key": "other"})
    assert keyed is not None and keyed.credentials is None and keyed.api_key == "other"
