import pytest

import llmrelay
from llmrelay.providers.registry import PROVIDERS, make_deployment, split_model


def test_prefixes_resolve_from_the_table() -> None:
    assert split_model("openai/o1-pro")[1] == "o1-pro"
    assert split_model("openrouter/anthropic/claude-3.5")[1] == "anthropic/claude-3.5"
    assert split_model("gpt-4o")[0] is PROVIDERS["openai"]
    for name in ("azure", "xai", "openrouter", "hosted_vllm", "ollama"):
        assert split_model(f"{name}/m")[0].name == name


def test_unknown_prefix_lists_the_known_ones() -> None:
    with pytest.raises(llmrelay.BadRequestError) as exc:
        split_model("nope/model")
    assert "nope" in exc.value.message and "openai" in exc.value.message and "xai" in exc.value.message
    assert exc.value.body["param"] == "model"


def test_keys_and_bases_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://example.test/v1/")
    dep = make_deployment("openai/gpt-4o")
    assert dep.api_key == "sk-env" and dep.api_base == "http://example.test/v1"
    assert dep.auth_headers()["authorization"] == "Bearer sk-env"
    assert make_deployment("openai/gpt-4o", api_key="sk-arg").api_key == "sk-arg"
    # the key is part of the identity: another account cannot continue this one's responses
    assert make_deployment("openai/gpt-4o", api_key="a").id != make_deployment("openai/gpt-4o", api_key="b").id


def test_azure_url_shapes() -> None:
    base = "https://r.openai.azure.com"
    dep = make_deployment("azure/my-dep", api_base=base, api_key="k", api_version="2025-04-01-preview")
    assert dep.url("/responses") == f"{base}/openai/responses?api-version=2025-04-01-preview"
    assert dep.auth_headers() == {"api-key": "k"}
    assert make_deployment("azure/d", api_base=base, api_key="k").url("/responses") == f"{base}/openai/v1/responses"
    scoped = make_deployment("azure/d", api_base=f"{base}/openai/deployments/d", api_key="k", api_version="2025-03-01")
    assert scoped.url("/responses/r1") == f"{base}/openai/deployments/d/responses/r1?api-version=2025-03-01"


def test_provider_without_default_base_needs_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOSTED_VLLM_API_BASE", raising=False)
    with pytest.raises(llmrelay.BadRequestError, match="HOSTED_VLLM_API_BASE"):
        make_deployment("hosted_vllm/llama")


def test_config_refuses_what_it_cannot_honour() -> None:
    from llmrelay.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match=r"router_settings.routing_strategy: .*cost-based-routing is not supported"):
        parse_config({"model_list": [], "router_settings": {"routing_strategy": "cost-based-routing"}})
    with pytest.raises(ConfigError, match=r"router_settings.routing_strategy"):
        parse_config({"model_list": [], "router_settings": {"routing_strategy": "fastest"}})
    with pytest.raises(ConfigError, match=r"general_settings.alertin: unknown key; did you mean 'alerting'"):
        parse_config({"model_list": [], "general_settings": {"alertin": ["slack"]}})
    entry = {"model_name": "a", "model_info": {"max_input_tokens": 100},
             "litellm_params": {"model": "anthropic/claude", "api_key": "k", "drop_params": True}}  # fmt: skip
    (dep,) = parse_config({"model_list": [entry]}).deployments()
    assert dep.extra == {"max_input_tokens": 100, "drop_params": True}


@pytest.mark.parametrize(
    ("base", "used"),
    [
        ("http://g.test", "http://g.test/v1beta"),
        ("http://g.test/", "http://g.test/v1beta"),
        ("http://g.test/gateway", "http://g.test/gateway/v1beta"),
        ("http://g.test/v1beta", "http://g.test/v1beta"),
        ("http://g.test/v1beta/", "http://g.test/v1beta"),
        ("http://g.test/v1", "http://g.test/v1"),
        ("http://g.test/v1alpha", "http://g.test/v1alpha"),
    ],
)
def test_gemini_base_with_or_without_its_version_path(base: str, used: str) -> None:
    dep = make_deployment("gemini/gemini-2.5-flash", api_base=base, api_key="k")
    assert dep.api_base == used
    # other providers take their base as given
    assert make_deployment("openai/gpt-4o", api_base=base, api_key="k").api_base == base.rstrip("/")


def test_stored_deployment_takes_the_callers_options_over_what_the_process_knows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from llmrelay.providers.registry import stored_deployment

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    known = make_deployment("azure/dep", api_key="old", api_base="https://r.test", api_version="2025-03-01", timeout=5)
    assert stored_deployment(known, "gpt-4o", {}) is known
    assert stored_deployment(known, "gpt-4o", {"timeout": 3}) is known  # not an address: nothing to rebuild
    rotated = stored_deployment(known, "gpt-4o", {"api_key": "new"})
    assert (rotated.provider.name, rotated.api_key, rotated.api_base, rotated.api_version, rotated.timeout) == (
        "azure", "new", "https://r.test", "2025-03-01", 5
    )  # fmt: skip
    # another provider inherits nothing from the known deployment, its key least of all
    other = stored_deployment(known, "gpt-4o", {"custom_llm_provider": "openai", "api_base": "http://o.test/v1"})
    assert (other.provider.name, other.api_key, other.api_base) == ("openai", None, "http://o.test/v1")
    # a process that never saw the deployment: OpenAI unless told otherwise
    fresh = stored_deployment(None, "o1-pro-2025-03-19", {"api_key": "k", "api_base": "http://o.test/v1"})
    assert (fresh.provider.name, fresh.model, fresh.api_key) == ("openai", "o1-pro-2025-03-19", "k")
    assert stored_deployment(None, "m", {}) is None
