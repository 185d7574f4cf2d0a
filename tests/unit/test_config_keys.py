"""LiteLLM keys llmrelay does not implement: skipped and named, refused, or an error with a hint."""

from __future__ import annotations

import re
from typing import Any

import pytest

from llmrelay import config_keys
from llmrelay.config import ConfigError, parse_config

MODEL = {"model_name": "demo", "litellm_params": {"model": "mock/demo"}}


def config_with(path: str, value: Any) -> dict[str, Any]:
    """A config whose `path` (dotted, `model` for the one model entry) is set to `value`."""
    config: dict[str, Any] = {"model_list": [{"model_name": "demo", "litellm_params": {"model": "mock/demo"}}]}
    *parents, key = path.split(".")
    node = config
    for part in parents:
        node = node["model_list"][0] if part == "model" else node.setdefault(part, {})
    node[key] = value
    return config


def test_the_tables_do_not_overlap() -> None:
    for section, refused in config_keys.REFUSE.items():
        assert not config_keys.SKIP.get(section, frozenset()) & refused.keys(), section


@pytest.mark.parametrize(
    ("section", "key", "kind"),
    [
        ("general_settings", "alerting", "skip"),
        ("general_settings", "proxy_batch_write_at", "skip"),
        ("general_settings", "database_connection_pool_limit", "skip"),
        ("litellm_settings", "service_callbacks", "skip"),
        ("router_settings", "client_ttl", "skip"),
        ("litellm_params", "input_cost_per_second", "skip"),
        ("model_info", "mode", "skip"),
        ("model_info", "supports_vision", "skip"),
        ("router_settings", "model_group_alias", "refuse"),
        ("router_settings", "provider_budget_config", "refuse"),
        ("litellm_settings", "model_alias_map", "refuse"),
        ("litellm_settings", "max_budget", "refuse"),
        ("litellm_settings", "cache", "refuse"),
        ("general_settings", "max_parallel_requests", "refuse"),
        ("general_settings", "enforce_user_param", "refuse"),
        ("litellm_params", "max_budget", "refuse"),
        ("litellm_params", "temperature", "refuse"),
        ("model_info", "access_groups", "refuse"),
        ("top", "guardrails", "refuse"),
        ("general_settings", "no_such_setting", "unknown"),
        ("litellm_params", "api_bse", "unknown"),
    ],
)
def test_classify(section: str, key: str, kind: str) -> None:
    assert config_keys.classify(section, key) == kind


def test_a_misspelt_model_info_key_is_not_taken_for_metadata() -> None:
    assert config_keys.classify("model_info", "max_input_token", ["id", "max_input_tokens"]) == "unknown"


def test_skippable_keys_are_dropped_and_named() -> None:
    raw = {
        "model_list": [
            {**MODEL, "model_info": {"id": "d1", "mode": "chat", "base_model": "gpt-4o"}},
            {"model_name": "b", "litellm_params": {"model": "mock/b", "input_cost_per_second": 0.1}},
        ],
        "general_settings": {"master_key": "sk-1", "alerting": ["slack"], "alerting_args": "os.environ/UNSET_VAR_X"},
        "litellm_settings": {"success_callback": ["langfuse"], "drop_params": True},
        "router_settings": {"client_ttl": 3600},
        "callback_settings": {"otel": {"message_logging": False}},
    }
    config = parse_config(raw)
    assert config.skipped == [
        "callback_settings",
        "general_settings.alerting",
        "general_settings.alerting_args",  # its unset os.environ/ reference is never read
        "router_settings.client_ttl",
        "model_list[0].model_info.mode",
        "model_list[0].model_info.base_model",
        "model_list[1].litellm_params.input_cost_per_second",
        "litellm_settings.success_callback[langfuse]",  # a callback needing a third-party service
    ]
    assert config.general_settings.master_key == "sk-1" and config.litellm_settings.drop_params
    assert config.deployments()[0].id == "d1"
    assert raw["general_settings"]["alerting"] == ["slack"]  # the caller's dict is left alone


def test_empty_sections_are_accepted() -> None:
    raw = {"model_list": [MODEL], "general_settings": None, "litellm_settings": None, "router_settings": None}
    assert parse_config(raw).skipped == []


@pytest.mark.parametrize(
    "path",
    [
        "router_settings.model_group_alias",
        "router_settings.enable_tag_filtering",
        "litellm_settings.model_alias_map",
        "litellm_settings.max_budget",
        "general_settings.max_parallel_requests",
        "general_settings.enforce_user_param",
        "model.litellm_params.max_budget",
        "model.model_info.access_groups",
    ],
)
def test_behaviour_changing_keys_are_refused(path: str) -> None:
    where = re.escape(path.replace("model.", "model_list[0]."))
    with pytest.raises(ConfigError, match=rf"^{where}: not supported yet: llmrelay does not implement"):
        parse_config(config_with(path, 10))


@pytest.mark.parametrize(
    ("path", "hint"),
    [
        ("general_settings.mastr_key", "master_key"),
        ("litellm_settings.succes_callback", "success_callback"),
        ("router_settings.fallback", "fallbacks"),
        ("model.litellm_params.api_bse", "api_base"),
        ("model.model_info.max_input_token", "max_input_tokens"),
        ("model_lst", "model_list"),
    ],
)
def test_unknown_keys_get_a_did_you_mean(path: str, hint: str) -> None:
    where = re.escape(path.replace("model.", "model_list[0]."))
    with pytest.raises(ConfigError, match=rf"^{where}: unknown key; did you mean '{hint}'\?$"):
        parse_config(config_with(path, 1))


def test_a_key_unlike_any_other_is_just_unknown() -> None:
    with pytest.raises(ConfigError, match=r"^general_settings.zzzz: unknown key$"):
        parse_config(config_with("general_settings.zzzz", 1))
