"""LiteLLM config keys llmrelay does not implement yet, as data.

A key llmrelay implements is a field of its config model (config.py) and never looks here.
Every other key LiteLLM documents is one of two kinds:

- SKIP: it changes no request (logging, callbacks, alerting, the admin UI, spend and database
  bookkeeping, descriptive model_info): dropped, and named in one startup warning, so an
  existing LiteLLM config starts.
- REFUSE: ignoring it would change what a request does (routing, fallbacks, retries, limits,
  budgets, access control, caching, guardrails, request defaults, credentials from elsewhere):
  startup stops and names it. The value says what it governs.

Anything else is a typo or not a LiteLLM key: an error with a "did you mean".
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Literal

Kind = Literal["skip", "refuse", "unknown"]

_CALLBACKS = "logging callbacks"
_ROUTING = "routing"
_RETRIES = "retry policy"
_LIMITS = "rate and parallel-request limits"
_BUDGETS = "budgets"
_ACCESS = "access control"
_CACHE = "response caching"
_GUARDRAILS = "guardrails"
_DEFAULTS = "request defaults the proxy adds or overrides"
_CREDENTIALS = "credentials llmrelay cannot read yet"

SKIP: dict[str, frozenset[str]] = {
    "top": frozenset({
        "callback_settings", "credential_list", "assistant_settings", "files_settings",
        "finetune_settings", "search_tools", "vector_store_registry", "prompts",
    }),
    "general_settings": frozenset({
        "disable_spend_logs", "disable_spend_updates", "disable_master_key_return", "disable_reset_budget",
        "disable_adding_master_key_hash_to_db", "disable_responses_id_security",
        "disable_retry_on_max_parallel_request_limit_error", "reject_clientside_metadata_tags",
        "database_connection_pool_limit", "database_connection_timeout", "allow_requests_on_db_unavailable",
        "disable_prisma_schema_update", "store_model_in_db", "supported_db_objects", "user_api_key_cache_ttl",
        "health_check_details", "use_shared_health_check",
        "alerting", "alerting_threshold", "alert_types", "alerting_args", "alert_to_webhook_url",
        "spend_report_frequency", "proxy_batch_write_at", "proxy_batch_polling_interval",
        "proxy_budget_rescheduler_min_time", "proxy_budget_rescheduler_max_time",
        "maximum_spend_logs_retention_period", "maximum_spend_logs_retention_interval",
        "ui_access_mode", "custom_sso", "oauth2_config_mappings", "user_mcp_management_mode", "litellm_license",
        "proxy_admin_email", "allow_user_auth", "use_x_forwarded_for", "pass_through_endpoints",
        "use_client_credentials_pass_through_routes",
    }),
    "litellm_settings": frozenset({
        "service_callbacks", "callback_settings",
        "turn_off_message_logging", "redact_user_api_key_info", "redact_messages_in_exceptions",
        "langfuse_default_tags", "log_raw_request_response", "s3_callback_params", "store_audit_logs",
        "disable_end_user_cost_tracking", "disable_end_user_cost_tracking_prometheus_only",
        "prometheus_initialize_budget_metrics", "extra_spend_tag_headers", "global_disable_no_log_param",
        "disable_add_transform_inline_image_block", "disable_hf_tokenizer_download", "disable_token_counter",
        "disable_copilot_system_to_assistant", "use_chat_completions_url_for_anthropic_messages",
        "enable_preview_features", "enable_key_alias_format_validation", "enable_loadbalancing_on_batch_endpoints",
        "force_ipv4", "ssl_verify", "ssl_certificate", "disable_aiohttp_transport", "return_response_headers",
        "mcp_aliases", "default_team_settings", "public_teams", "telemetry",
    }),
    "router_settings": frozenset({
        "client_ttl", "cache_kwargs", "debug_level", "set_verbose", "alerting_config", "ignore_invalid_deployments",
        "polling_interval", "default_priority", "deployment_affinity_ttl_seconds", "router_general_settings",
        "assistants_config", "search_tools",
    }),
    "litellm_params": frozenset({
        "input_cost_per_second", "output_cost_per_second",
        "base_model", "tags", "region_name", "use_in_pass_through", "metadata",
    }),
}  # fmt: skip

REFUSE: dict[str, dict[str, str]] = {
    "top": {"include": "config files included into this one", "guardrails": _GUARDRAILS},
    "general_settings": {
        "max_parallel_requests": _LIMITS, "global_max_parallel_requests": _LIMITS,
        "enforce_user_param": "a required 'user' field", "enforced_params": "required request fields",
        "completion_model": _DEFAULTS, "embedding_model": _DEFAULTS, "image_generation_model": _DEFAULTS,
        "moderation_model": _DEFAULTS, "infer_model_from_keys": _ROUTING,
        "forward_openai_org_id": "headers forwarded upstream",
        "forward_client_headers_to_llm_api": "headers forwarded upstream",
        "max_response_size_mb": "a response size limit",
        "allowed_routes": _ACCESS, "public_routes": _ACCESS, "admin_only_routes": _ACCESS, "allowed_ips": _ACCESS,
        "enable_jwt_auth": _ACCESS, "litellm_jwtauth": _ACCESS, "custom_auth": _ACCESS,
        "enable_oauth2_auth": _ACCESS, "enable_oauth2_proxy_auth": _ACCESS, "litellm_key_header_name": _ACCESS,
        "allow_client_side_credentials": _ACCESS, "custom_key_generate": _ACCESS, "default_team_disabled": _ACCESS,
        "service_account_settings": _ACCESS,
        "key_management_system": _CREDENTIALS, "key_management_settings": _CREDENTIALS,
        "use_azure_key_vault": _CREDENTIALS, "use_google_kms": _CREDENTIALS,
    },
    "litellm_settings": {
        "model_alias_map": _ROUTING, "max_parallel_requests": _LIMITS,
        "max_budget": _BUDGETS, "budget_duration": _BUDGETS, "max_end_user_budget": _BUDGETS,
        "max_internal_user_budget": _BUDGETS, "internal_user_budget_duration": _BUDGETS,
        "default_internal_user_params": _ACCESS, "key_generation_settings": _ACCESS,
        "upperbound_key_generate_params": _ACCESS, "default_key_generate_params": _ACCESS,
        "cache": _CACHE, "cache_params": _CACHE, "guardrails": _GUARDRAILS,
        "modify_params": "request rewriting", "enable_json_schema_validation": "response validation",
    },
    "router_settings": {
        "enable_pre_call_checks": _ROUTING, "enable_pre_call_check": _ROUTING, "optional_pre_call_checks": _ROUTING,
        "enable_tag_filtering": _ROUTING, "tag_filtering_match_any": _ROUTING, "routing_strategy_args": _ROUTING,
        "model_group_alias": _ROUTING, "model_group_retry_policy": _RETRIES, "provider_budget_config": _BUDGETS,
        "cache_responses": _CACHE, "caching_groups": _CACHE, "guardrail_list": _GUARDRAILS,
        "default_litellm_params": _DEFAULTS,
    },
    "litellm_params": {
        "max_budget": _BUDGETS, "budget_duration": _BUDGETS,
        "guardrails": _GUARDRAILS, "cache_control_injection_points": "request rewriting",
        "merge_reasoning_content_in_choices": "request rewriting", "additional_drop_params": "request rewriting",
        "configurable_clientside_auth_params": _ACCESS, "litellm_credential_name": _CREDENTIALS,
        **dict.fromkeys((
            "azure_username", "azure_password",
        ), _CREDENTIALS),
        **dict.fromkeys((
            "temperature", "max_tokens", "max_completion_tokens", "max_output_tokens", "top_p", "stop", "seed",
            "frequency_penalty", "presence_penalty", "response_format", "tools", "tool_choice",
            "parallel_tool_calls", "reasoning_effort", "thinking", "user", "n", "logit_bias", "logprobs",
            "top_logprobs", "stream", "extra_body",
        ), _DEFAULTS),
    },
    "model_info": {
        "access_groups": _ACCESS, "access_via_team_ids": _ACCESS, "direct_access": _ACCESS, "team_id": _ACCESS,
        "team_public_model_name": _ACCESS, "tier": _ACCESS,
    },
}  # fmt: skip

# LiteLLM's model_info is free-form: keys it does not list are descriptive metadata, skipped.
OPEN_SECTIONS = frozenset({"model_info"})


def classify(section: str, key: str, implemented: Iterable[str] = ()) -> Kind:
    """What to do with `key` of `section`, given the keys llmrelay implements there."""
    if key in REFUSE.get(section, {}):
        return "refuse"
    if key in SKIP.get(section, ()):
        return "skip"
    if section in OPEN_SECTIONS and not difflib.get_close_matches(key, list(implemented), n=1, cutoff=0.85):
        return "skip"  # free-form metadata, unless it looks like a misspelt key llmrelay reads
    return "unknown"


def governs(section: str, key: str) -> str:
    return REFUSE[section][key]


def suggestion(section: str, key: str, implemented: Iterable[str]) -> str | None:
    """The closest key of `section` llmrelay knows, implemented or listed here."""
    known = [*implemented, *SKIP.get(section, ()), *REFUSE.get(section, {})]
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    return close[0] if close else None
