"""Model names through the proxy, driven by the official openai SDK: bare names (a provider
prefix stripped by the client) and LiteLLM's wildcard entries."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai import OpenAI

from tests.e2e.proxy_process import ProxyProcess, start_proxy, write_config
from tests.fakes.process import FakeServer


def entry(name: str, model: str, fake: FakeServer | None = None) -> dict:
    params = {"model": model, "api_key": "test-key"}
    if fake is not None:
        params["api_base"] = fake.url
    return {"model_name": name, "litellm_params": params}


@pytest.fixture(scope="module")
def named(
    openai_fake: FakeServer, anthropic_fake: FakeServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    """Exact names, two groups that share a bare name, and a provider wildcard."""
    model_list = [
        entry("openai/o1-pro", "openai/o1-pro", openai_fake),
        entry("openai/gpt-4o", "openai/gpt-4o", openai_fake),
        entry("xai/gpt-4o", "xai/gpt-4o", openai_fake),
        entry("anthropic/*", "anthropic/*", anthropic_fake),
    ]
    config = write_config({"model_list": model_list}, tmp_path_factory.mktemp("named"))
    with start_proxy("--config", str(config)) as proxy:
        yield proxy


def client(proxy: ProxyProcess) -> OpenAI:
    return OpenAI(base_url=proxy.url, api_key="k", max_retries=0)


def test_a_bare_name_reaches_the_group_behind_its_provider_prefix(named: ProxyProcess, upstream: FakeServer) -> None:
    # what the OpenAI Agents SDK sends for model="openai/o1-pro"
    r = client(named).responses.create(model="o1-pro", input="bare")
    assert r.output_text == "Echo (turns=1): bare"
    (req,) = upstream.requests()
    assert req["body"]["model"] == "o1-pro"
    with client(named).responses.stream(model="o1-pro", input="again", previous_response_id=r.id) as stream:
        assert stream.get_final_response().output_text == "Echo (turns=2): again"


def test_an_ambiguous_bare_name_is_a_404_naming_the_candidates(named: ProxyProcess, upstream: FakeServer) -> None:
    with pytest.raises(openai.NotFoundError) as exc:
        client(named).responses.create(model="gpt-4o", input="which one?")
    error = exc.value.body
    assert error["code"] == "model_not_found" and error["param"] == "model" and error["type"]
    assert "'openai/gpt-4o'" in error["message"] and "'xai/gpt-4o'" in error["message"]
    assert upstream.requests() == []
    with pytest.raises(openai.NotFoundError, match="'o1' does not exist"):
        client(named).responses.create(model="o1", input="unknown")


def test_a_provider_wildcard_serves_any_model_of_that_provider(named: ProxyProcess, anthropic_fake: FakeServer) -> None:
    anthropic_fake.reset()
    c = client(named)
    r = c.responses.create(model="anthropic/claude-opus-4-1", input="wild")
    assert r.output_text == "Echo (turns=1): wild"
    with c.responses.stream(model="anthropic/claude-haiku-4-5", input="more", previous_response_id=r.id) as stream:
        final = stream.get_final_response()
    assert final.output_text == "Echo (turns=2): more"
    first, second = anthropic_fake.requests()
    assert first["body"]["model"] == "claude-opus-4-1" and second["body"]["model"] == "claude-haiku-4-5"
    assert first["headers"]["x-api-key"] == "test-key"
    assert c.responses.retrieve(final.id).output_text == final.output_text
    with pytest.raises(openai.NotFoundError):
        c.responses.create(model="gemini/gemini-2.5-flash", input="no wildcard for this one")


def test_models_lists_the_exact_names_and_the_wildcard_patterns(named: ProxyProcess) -> None:
    ids = [m.id for m in client(named).models.list()]
    assert ids == ["openai/o1-pro", "openai/gpt-4o", "xai/gpt-4o", "anthropic/*"]


def test_a_catch_all_serves_every_model_and_the_most_specific_wildcard_wins(
    upstream: FakeServer, openai_fake_b: FakeServer, anthropic_fake: FakeServer, tmp_path: Path
) -> None:
    openai_fake_b.reset()
    anthropic_fake.reset()
    model_list = [
        entry("*", "openai/*", openai_fake_b),
        entry("anthropic/*", "anthropic/*", anthropic_fake),
        entry("gpt-4o", "openai/gpt-4o", upstream),
    ]
    config = write_config({"model_list": model_list}, tmp_path)
    with start_proxy("--config", str(config)) as proxy:
        c = client(proxy)
        assert c.responses.create(model="any-model-at-all", input="x").output_text == "Echo (turns=1): x"
        assert c.responses.create(model="anthropic/claude-x", input="y").output_text == "Echo (turns=1): y"
        assert c.responses.create(model="gpt-4o", input="z").output_text == "Echo (turns=1): z"
    assert [r["body"]["model"] for r in openai_fake_b.requests()] == ["any-model-at-all"]
    assert [r["body"]["model"] for r in anthropic_fake.requests()] == ["claude-x"]
    assert [r["body"]["model"] for r in upstream.requests()] == ["gpt-4o"]


def test_a_native_background_response_behind_a_wildcard_is_reached_from_another_instance(
    upstream: FakeServer, tmp_path: Path
) -> None:
    config = write_config({"model_list": [entry("*", "*", upstream)]}, tmp_path)
    store = str(tmp_path / "shared.db")
    with start_proxy("--config", str(config), store=store) as a, start_proxy("--config", str(config), store=store) as b:
        job = client(a).responses.create(model="o1-pro", input="later", background=True)
        deadline = time.monotonic() + 20
        while (got := client(b).responses.retrieve(job.id)).status != "completed":
            assert time.monotonic() < deadline, got.status
            time.sleep(0.05)
        assert got.output_text == "Echo (turns=1): later"
        upstream.enqueue({"background_delay": 30})
        slow = client(a).responses.create(model="o1-pro", input="stop", background=True)
        assert client(b).responses.cancel(slow.id).status == "cancelled"
        assert client(a).responses.retrieve(slow.id).status == "cancelled"
