"""Which deployment a requested model name resolves to: exact, bare, wildcard."""

from __future__ import annotations

from typing import Any

import pytest

import llmrelay
from llmrelay.config import parse_config
from llmrelay.router import Router


def router(*entries: tuple[str, str] | tuple[str, str, dict[str, Any]]) -> Router:
    model_list = [
        {"model_name": e[0], "litellm_params": {"model": e[1], "api_key": "k", **(e[2] if len(e) > 2 else {})}}
        for e in entries
    ]
    config = parse_config({"model_list": model_list})
    return Router(config.deployments(), config.wildcards())


def test_an_exact_name_resolves_to_its_group() -> None:
    r = router(("claude", "anthropic/claude-sonnet-4-5"), ("openai/o1-pro", "openai/o1-pro"))
    dep = r.pick("claude")
    assert (dep.provider.name, dep.model, dep.model_name) == ("anthropic", "claude-sonnet-4-5", "claude")


def test_a_bare_name_resolves_to_the_one_group_behind_a_provider_prefix() -> None:
    r = router(("openai/o1-pro", "openai/o1-pro"), ("anthropic/claude-x", "anthropic/claude-x"))
    assert r.pick("o1-pro").model_name == "openai/o1-pro"
    assert r.pick("claude-x").model_name == "anthropic/claude-x"
    # only a provider's prefix is stripped
    with pytest.raises(llmrelay.NotFoundError):
        router(("team/o1-pro", "openai/o1-pro")).pick("o1-pro")


def test_an_exact_name_wins_over_a_bare_match() -> None:
    r = router(("o1-pro", "openai/o1-pro", {"api_base": "http://exact.test/v1"}), ("openai/o1-pro", "openai/o1-pro"))
    assert r.pick("o1-pro").api_base == "http://exact.test/v1"


def test_an_ambiguous_bare_name_is_a_404_listing_the_candidates() -> None:
    r = router(("openai/gpt-4o", "openai/gpt-4o"), ("azure/gpt-4o", "azure/gpt-4o", {"api_base": "https://a.test"}))
    with pytest.raises(llmrelay.NotFoundError) as exc:
        r.pick("gpt-4o")
    assert exc.value.code == "model_not_found" and exc.value.body["param"] == "model"
    assert "ambiguous" in exc.value.message
    assert "'azure/gpt-4o'" in exc.value.message and "'openai/gpt-4o'" in exc.value.message


def test_an_unknown_name_is_a_404() -> None:
    with pytest.raises(llmrelay.NotFoundError, match="'nope' does not exist") as exc:
        router(("claude", "anthropic/claude-x")).pick("nope")
    assert exc.value.code == "model_not_found"


def test_a_provider_wildcard_puts_the_requested_model_in() -> None:
    r = router(("anthropic/*", "anthropic/*", {"api_base": "http://a.test/v1"}))
    dep = r.pick("anthropic/claude-opus-4")
    assert (dep.provider.name, dep.model, dep.model_name) == ("anthropic", "claude-opus-4", "anthropic/claude-opus-4")
    assert dep.api_key == "k" and dep.api_base == "http://a.test/v1"
    with pytest.raises(llmrelay.NotFoundError):
        r.pick("openai/gpt-4o")


@pytest.mark.parametrize(
    ("model", "requested", "provider", "upstream_model"),
    [
        ("*", "gpt-4o", "openai", "gpt-4o"),
        ("*", "anthropic/claude-x", "anthropic", "claude-x"),
        ("openai/*", "gpt-4o", "openai", "gpt-4o"),
        ("openai/*", "anthropic/claude-x", "openai", "anthropic/claude-x"),  # LiteLLM: openai/ + the name
        ("anthropic/claude-fixed", "anything", "anthropic", "claude-fixed"),  # no `*`: the model as is
    ],
)
def test_a_catch_all_wildcard_serves_any_model(model: str, requested: str, provider: str, upstream_model: str) -> None:
    dep = router(("*", model)).pick(requested)
    assert (dep.provider.name, dep.model, dep.model_name) == (provider, upstream_model, requested)


def test_each_star_of_the_model_takes_the_part_its_star_matched() -> None:
    dep = router(("fo::*:static::*", "openai/fo::*:static::*")).pick("fo::hi:static::there")
    assert dep.model == "fo::hi:static::there"
    dep = router(("team-*", "anthropic/*")).pick("team-claude-x")
    assert (dep.provider.name, dep.model) == ("anthropic", "claude-x")


def test_the_most_specific_wildcard_wins_and_exact_names_win_over_wildcards() -> None:
    r = router(
        ("*", "openai/*"),
        ("anthropic/*", "anthropic/*", {"api_base": "http://any-claude.test/v1"}),
        ("anthropic/claude-opus-*", "anthropic/claude-opus-*", {"api_base": "http://opus.test/v1"}),
        ("anthropic/claude-haiku", "anthropic/claude-haiku", {"api_base": "http://exact.test/v1"}),
    )
    assert r.pick("anthropic/claude-opus-4").api_base == "http://opus.test/v1"
    assert r.pick("anthropic/claude-sonnet-4").api_base == "http://any-claude.test/v1"
    assert r.pick("anthropic/claude-haiku").api_base == "http://exact.test/v1"
    assert r.pick("gpt-4o").provider.name == "openai"


def test_a_wildcard_serves_a_bare_name_that_is_ambiguous_but_not_one_that_is_unique() -> None:
    r = router(
        ("openai/gpt-4o", "openai/gpt-4o", {"api_base": "http://named.test/v1"}),
        ("azure/gpt-4o", "azure/gpt-4o", {"api_base": "https://a.test"}),
        ("openai/o1-pro", "openai/o1-pro", {"api_base": "http://named.test/v1"}),
        ("*", "openai/*", {"api_base": "http://catch-all.test/v1"}),
    )
    assert r.pick("o1-pro").model_name == "openai/o1-pro"
    assert r.pick("gpt-4o").api_base == "http://catch-all.test/v1"


def test_a_wildcard_entry_lends_its_key_only_where_it_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-anthropic")
    config = parse_config({"model_list": [{"model_name": "*", "litellm_params": {"model": "*"}}]})
    r = Router(config.deployments(), config.wildcards())
    assert r.pick("anthropic/claude-x").api_key == "sk-anthropic"
    assert r.pick("gpt-4o").api_key == "sk-openai"


def test_a_wildcard_deployment_is_found_again_by_its_id() -> None:
    """A stored response names its deployment by id; another process with the same config
    must reach the same upstream from it."""
    entries = (("*", "*", {"api_base": "http://any.test/v1"}), ("anthropic/*", "anthropic/*"))
    dep = router(*entries).pick("gpt-4o")
    again = router(*entries).deployment(dep.id)
    assert again is not None and again.id == dep.id
    assert (again.provider.name, again.api_base, again.api_key) == ("openai", "http://any.test/v1", "k")
    claude = router(*entries).pick("anthropic/claude-x")
    assert router(*entries).deployment(claude.id).provider.name == "anthropic"
    assert router(*entries).deployment("dep_unknown") is None
    # a continuation prefers the deployment that holds the upstream state
    assert router(*entries).pick("gpt-4o-mini", prefer=dep.id).id == dep.id


def test_models_lists_exact_names_and_wildcard_patterns() -> None:
    r = router(("claude", "anthropic/claude-x"), ("*", "*"), ("anthropic/*", "anthropic/*"))
    assert r.names() == ["claude", "anthropic/*", "*"]
