"""config.yaml: LiteLLM's format, accepted unchanged (`model_list`, `litellm_params`,
`model_info`, `general_settings`, `litellm_settings`, `router_settings`,
`environment_variables`, and `os.environ/VAR` secrets).

Every problem is reported with its path in the file (`model_list[1].litellm_params.model: ...`)
before anything starts. LiteLLM keys llmrelay does not implement yet are skipped (and named)
or refused, as config_keys.py lists them; other unknown keys are errors.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from functools import partial
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from . import config_keys, errors
from .mcp.servers import TRANSPORTS, McpPolicy, McpServer
from .providers.media import MediaPolicy
from .providers.registry import AWS_PARAMS, Deployment, make_deployment, with_provider
from .router import RoutingSettings, Wildcard, policy
from .router.settings import fallback_table


class ConfigError(Exception):
    """A config problem, with the path of the offending value."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LitellmParams(_Section):
    model: str
    api_key: str | None = None
    api_base: str | None = None
    api_version: str | None = None
    custom_llm_provider: str | None = None
    timeout: float | None = Field(default=None, gt=0)
    stream_timeout: float | None = Field(default=None, gt=0)
    max_retries: int | None = Field(default=None, ge=0)
    num_retries: int | None = Field(default=None, ge=0)
    organization: str | None = None
    extra_headers: dict[str, str] | None = None
    headers: dict[str, str] | None = None
    use_chat_completions_api: bool = False
    drop_params: bool | None = None
    prompt_caching: bool | None = None  # llmrelay: mark the stable prefix for Claude's prompt cache
    mock_response: str | None = None
    # routing: simple-shuffle weights (weight, else rpm, else tpm), tiers (order), usage-based
    # limits (rpm, tpm) and calls in flight (max_parallel_requests), as LiteLLM's router takes them
    rpm: int | None = Field(default=None, gt=0)
    tpm: int | None = Field(default=None, gt=0)
    weight: float | None = Field(default=None, gt=0)
    order: int | None = Field(default=None, ge=0)
    max_parallel_requests: int | None = Field(default=None, gt=0)
    # AWS Bedrock (LiteLLM's names); the credentials chain applies when these are unset
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_session_token: str | None = None
    aws_region_name: str | None = None
    aws_profile_name: str | None = None
    aws_bedrock_runtime_endpoint: str | None = None
    aws_role_name: str | None = None  # a role ARN to assume with the credentials above
    aws_session_name: str | None = None
    aws_web_identity_token: str | None = None  # assume aws_role_name with this OIDC token
    aws_sts_endpoint: str | None = None
    # Cloud accounts (Vertex AI, Azure Entra ID), as LiteLLM names them
    vertex_project: str | None = None
    vertex_location: str | None = None
    vertex_credentials: str | dict[str, Any] | None = None
    azure_ad_token: str | None = None
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    # A deployment's own prices, over genai-prices' table
    input_cost_per_token: float | None = Field(default=None, ge=0)
    output_cost_per_token: float | None = Field(default=None, ge=0)
    cache_read_input_token_cost: float | None = Field(default=None, ge=0)


class ModelEntry(_Section):
    model_name: str
    litellm_params: LitellmParams
    model_info: dict[str, Any] = Field(default_factory=dict)


class GeneralSettings(_Section):
    master_key: str | None = None
    database_url: str | None = None
    store: str | None = None  # llmrelay: a SQLite path, "memory" or a Postgres URL
    max_request_size_mb: float = Field(default=32, gt=0)
    graceful_shutdown_timeout: float = Field(default=30, ge=0)
    access_log: bool = False  # llmrelay: one line per request (method, path, status, model, latency)
    background_health_checks: bool = False
    health_check_interval: float = Field(default=300, gt=0)
    mcp_allow_any_url: bool = False  # llmrelay: MCP tools may name servers beyond mcp_servers
    mcp_call_timeout: float = Field(default=60, gt=0)  # llmrelay: seconds for one MCP list or call
    mcp_max_output_bytes: int = Field(default=100_000, gt=0)  # llmrelay: a larger tool result is an error
    store_prompts_in_spend_logs: bool = False
    # llmrelay: image and file URLs fetched for upstreams that cannot fetch them (providers/media.py)
    media_max_mb: float = Field(default=20, gt=0)
    media_fetch_timeout: float = Field(default=15, gt=0)
    media_allow_private_urls: bool = False  # also fetch from loopback, private and link-local addresses


class McpServerEntry(BaseModel):
    # LiteLLM's entries carry more (auth_type, description, ...): kept, unused
    model_config = ConfigDict(extra="allow")
    url: str
    transport: Literal["http", "streamable_http", "streamable-http", "sse"] = "http"
    headers: dict[str, str] = Field(default_factory=dict)


FallbackList = list[dict[str, list[str] | str]]


class _Failover(_Section):
    """The failover keys LiteLLM reads from router_settings and from litellm_settings alike."""

    fallbacks: FallbackList | None = None
    default_fallbacks: list[str] | None = None
    context_window_fallbacks: FallbackList | None = None
    content_policy_fallbacks: FallbackList | None = None
    allowed_fails: int | None = Field(default=None, ge=0)
    cooldown_time: float | None = Field(default=None, ge=0)


class LitellmSettings(_Failover):
    drop_params: bool = False
    prompt_caching: bool = True  # llmrelay: the default of every deployment's prompt_caching
    num_retries: int = Field(default=0, ge=0)
    request_timeout: float | None = Field(default=None, gt=0)
    timeout: float | None = Field(default=None, gt=0)
    stream_timeout: float | None = Field(default=None, gt=0)
    set_verbose: bool = False
    # telemetry targets (llmrelay/telemetry/settings.py): "prometheus", "otel", a webhook URL,
    # "generic_api"; success_callback sees completed calls, failure_callback failed ones
    callbacks: list[str] = Field(default_factory=list)
    success_callback: list[str] = Field(default_factory=list)
    failure_callback: list[str] = Field(default_factory=list)
    json_logs: bool = False  # one JSON line per request, and llmrelay's own log lines as JSON


class RouterSettings(_Failover):
    routing_strategy: Literal[
        "simple-shuffle", "least-busy", "latency-based-routing", "usage-based-routing-v2", "cost-based-routing"
    ] = "simple-shuffle"
    num_retries: int | None = Field(default=None, ge=0)
    timeout: float | None = Field(default=None, gt=0)
    stream_timeout: float | None = Field(default=None, gt=0)
    retry_policy: dict[str, int] | None = None
    retry_after: float = Field(default=0, ge=0)
    max_fallbacks: int = Field(default=5, ge=0)
    default_max_parallel_requests: int | None = Field(default=None, gt=0)
    allowed_fails_policy: dict[str, int] | None = None
    disable_cooldowns: bool = False
    mid_stream_fallback: bool = True  # llmrelay: a stream that breaks goes on elsewhere (false: it fails)
    redis_url: str | None = None  # cooldowns, usage and rate-limit counters shared by every instance
    redis_host: str | None = None
    redis_port: int = 6379
    redis_password: str | None = None
    redis_db: int = 0

    def redis(self) -> str | None:
        if self.redis_url:
            return self.redis_url
        if not self.redis_host:
            return None
        auth = f":{quote(self.redis_password, safe='')}@" if self.redis_password else ""
        return f"redis://{auth}{self.redis_host}:{self.redis_port}/{self.redis_db}"

    @field_validator("routing_strategy")
    @classmethod
    def _known_prices(cls, value: str) -> str:
        if value == "cost-based-routing":
            raise ValueError(
                "cost-based-routing is not supported yet: llmrelay has no model price table to route on; "
                "use simple-shuffle, least-busy, latency-based-routing or usage-based-routing-v2"
            )
        return value

    @field_validator("retry_policy")
    @classmethod
    def _retry_keys(cls, value: dict[str, int] | None) -> dict[str, int] | None:
        return _policy(value, policy.RETRY_KEYS)

    @field_validator("allowed_fails_policy")
    @classmethod
    def _fails_keys(cls, value: dict[str, int] | None) -> dict[str, int] | None:
        return _policy(value, policy.ALLOWED_FAILS_KEYS)


def _policy(value: dict[str, int] | None, known: frozenset[str]) -> dict[str, int] | None:
    for key, count in (value or {}).items():
        if key not in known:
            raise ValueError(f"unknown key '{key}': expected one of {', '.join(sorted(known))}")
        if count < 0:
            raise ValueError(f"'{key}' must be 0 or more")
    return value


class Config(_Section):
    model_list: list[ModelEntry] = Field(default_factory=list)
    general_settings: GeneralSettings = Field(default_factory=GeneralSettings)
    litellm_settings: LitellmSettings = Field(default_factory=LitellmSettings)
    router_settings: RouterSettings = Field(default_factory=RouterSettings)
    environment_variables: dict[str, str] = Field(default_factory=dict)
    mcp_servers: dict[str, McpServerEntry] = Field(default_factory=dict)
    _skipped: list[str] = PrivateAttr(default_factory=list)

    @property
    def skipped(self) -> list[str]:
        """Paths of the LiteLLM keys that were skipped: llmrelay does not implement them yet."""
        return self._skipped

    @property
    def num_retries(self) -> int:
        rs = self.router_settings.num_retries
        return rs if rs is not None else self.litellm_settings.num_retries

    @property
    def timeout(self) -> float | None:
        ls = self.litellm_settings
        return self.router_settings.timeout or ls.timeout or ls.request_timeout

    @property
    def stream_timeout(self) -> float | None:
        return self.router_settings.stream_timeout or self.litellm_settings.stream_timeout

    def routing(self) -> RoutingSettings:
        """The router's settings; router_settings win over the same keys of litellm_settings."""
        rs, ls = self.router_settings, self.litellm_settings

        def either(key: str) -> Any:
            value = getattr(rs, key)
            return value if value is not None else getattr(ls, key)

        allowed_fails, cooldown_time = either("allowed_fails"), either("cooldown_time")
        return RoutingSettings(
            routing_strategy=rs.routing_strategy,
            num_retries=self.num_retries,
            retry_policy=rs.retry_policy or {},
            retry_after=rs.retry_after,
            fallbacks=fallback_table(either("fallbacks")),
            default_fallbacks=tuple(either("default_fallbacks") or ()),
            context_window_fallbacks=fallback_table(either("context_window_fallbacks")),
            content_policy_fallbacks=fallback_table(either("content_policy_fallbacks")),
            max_fallbacks=rs.max_fallbacks,
            default_max_parallel_requests=rs.default_max_parallel_requests,
            allowed_fails=3 if allowed_fails is None else allowed_fails,
            allowed_fails_policy=rs.allowed_fails_policy or {},
            cooldown_time=5.0 if cooldown_time is None else cooldown_time,
            disable_cooldowns=rs.disable_cooldowns,
            mid_stream_fallback=rs.mid_stream_fallback,
            redis_url=rs.redis(),
        )

    def _check_fallbacks(self) -> None:
        """Every fallback names a model group this config serves."""
        names = {e.model_name for e in self.model_list}
        for section in ("router_settings", "litellm_settings"):
            settings = getattr(self, section)
            for key in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
                for i, entry in enumerate(getattr(settings, key) or ()):
                    for source, targets in entry.items():
                        for target in [targets] if isinstance(targets, str) else targets:
                            if target not in names:
                                raise ConfigError(f"{section}.{key}[{i}].{source}",
                                                  f"fallback '{target}' is not a model_name of model_list")  # fmt: skip
            for target in settings.default_fallbacks or ():
                if target not in names:
                    message = f"fallback '{target}' is not a model_name of model_list"
                    raise ConfigError(f"{section}.default_fallbacks", message)

    @property
    def store_url(self) -> str | None:
        gs = self.general_settings
        return gs.store or gs.database_url or os.environ.get("DATABASE_URL") or None

    def mcp_policy(self) -> McpPolicy:
        """The MCP servers a request may reach: those named here, any other URL only if allowed."""
        gs = self.general_settings
        servers = {name: McpServer(name, e.url, TRANSPORTS[e.transport], dict(e.headers))
                   for name, e in self.mcp_servers.items()}  # fmt: skip
        return McpPolicy(servers, allow_any_url=gs.mcp_allow_any_url, call_timeout=gs.mcp_call_timeout,
                         max_output_bytes=gs.mcp_max_output_bytes)  # fmt: skip

    def media_policy(self) -> MediaPolicy:
        """How image and file URLs are fetched for upstreams that cannot fetch them."""
        gs = self.general_settings
        return MediaPolicy(max_bytes=int(gs.media_max_mb * 1024 * 1024), timeout=gs.media_fetch_timeout,
                           allow_private=gs.media_allow_private_urls)  # fmt: skip

    def deployments(self) -> list[Deployment]:
        """The deployments of the exact model names (wildcard entries are `wildcards()`)."""
        return [self._deployment(i, e) for i, e in enumerate(self.model_list) if "*" not in e.model_name]

    def wildcards(self) -> list[Wildcard]:
        """The entries whose model_name holds `*`, LiteLLM's wildcard routing: each serves the
        names its pattern matches, its litellm_params applied to the model filled in per request."""
        out = []
        for i, entry in enumerate(self.model_list):
            if "*" in entry.model_name:
                template = self._deployment(i, entry)  # its provider and api_base checked now
                p = entry.litellm_params
                build = partial(_build, provider=p.custom_llm_provider, options=_options(entry))
                out.append(Wildcard(entry.model_name, p.model, build, template.id))
        return out

    def _deployment(self, i: int, entry: ModelEntry) -> Deployment:
        p = entry.litellm_params
        try:
            return make_deployment(
                with_provider(p.model, p.custom_llm_provider),
                model_name=entry.model_name,
                deployment_id=str(entry.model_info["id"]) if "id" in entry.model_info else None,
                **_options(entry),
            )
        except errors.APIStatusError as exc:
            param = exc.body.get("param") if isinstance(exc.body, dict) else None
            field = param if param in LitellmParams.model_fields else "model"
            raise ConfigError(f"model_list[{i}].litellm_params.{field}", exc.message) from None


def _build(model: str, *, provider: str | None, options: dict[str, Any]) -> Deployment:
    return make_deployment(with_provider(model, provider), **options)


def _options(entry: ModelEntry) -> dict[str, Any]:
    """make_deployment's arguments from an entry, but the model."""
    p = entry.litellm_params
    headers = {**(p.headers or {}), **(p.extra_headers or {})}
    if p.organization:
        headers["openai-organization"] = p.organization
    return {
        "api_key": p.api_key,
        "api_base": p.api_base,
        "api_version": p.api_version,
        "timeout": p.timeout,
        "stream_timeout": p.stream_timeout,
        "max_retries": p.num_retries if p.num_retries is not None else p.max_retries,
        "headers": headers,
        "extra": _extra(p, entry.model_info),
        "chat_api": p.use_chat_completions_api,
        "cloud_settings": {k: v for k in CLOUD_KEYS if (v := getattr(p, k)) is not None},
    }


ROUTING_PARAMS = ("rpm", "tpm", "weight", "order", "max_parallel_requests")
CLOUD_KEYS = ("vertex_project", "vertex_location", "vertex_credentials", "azure_ad_token", "tenant_id",
              "client_id", "client_secret")  # fmt: skip

PRICE_KEYS = ("input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost")
MODEL_INFO_KEYS = ("id", "max_input_tokens", *PRICE_KEYS)  # the model_info keys llmrelay reads
_SETTINGS: dict[str, type[BaseModel]] = {
    "general_settings": GeneralSettings,
    "litellm_settings": LitellmSettings,
    "router_settings": RouterSettings,
}


def _extra(p: LitellmParams, info: dict[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = {k: v for k in ROUTING_PARAMS if (v := getattr(p, k)) is not None}
    if isinstance(info.get("max_input_tokens"), int):
        extra["max_input_tokens"] = info["max_input_tokens"]
    if p.mock_response is not None:
        extra["mock_response"] = p.mock_response
    if p.drop_params is not None:
        extra["drop_params"] = p.drop_params
    if p.prompt_caching is not None:
        extra["prompt_caching"] = p.prompt_caching
    extra.update({k: v for k in AWS_PARAMS if (v := getattr(p, k))})
    for key in PRICE_KEYS:  # a deployment's own prices, over the price table's
        value = getattr(p, key)
        if value is None and isinstance(info.get(key), (int, float)) and not isinstance(info.get(key), bool):
            value = info[key]
        if value is not None:
            extra[key] = float(value)
    return extra


def load_config(path: str | Path) -> Config:
    """Read, resolve `os.environ/` references, and validate a config file."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError("", f"{path} is not valid YAML: {exc}") from None
    if raw is None:  # most likely the wrong file: refuse rather than serve no models
        raise ConfigError("", f"{path} is empty: give at least a model_list")
    return parse_config(raw)


BUILT_IN_CALLBACKS = frozenset({"prometheus", "otel", "generic_api"})


def _foreign_callbacks(settings: LitellmSettings) -> list[str]:
    """Callback targets that need a third-party service (langfuse, datadog, ...): skipped and
    named, as they change no request. Built in: prometheus, otel, generic_api, a webhook URL."""
    return [
        f"litellm_settings.{key}[{name}]"
        for key in ("callbacks", "success_callback", "failure_callback")
        for name in getattr(settings, key)
        if name not in BUILT_IN_CALLBACKS and not name.startswith(("http://", "https://"))
    ]


def parse_config(raw: Any) -> Config:
    if not isinstance(raw, dict):
        raise ConfigError("", "the config must be a mapping with a model_list")
    for name, value in (raw.get("environment_variables") or {}).items():
        os.environ.setdefault(str(name), str(value))
    screened, skipped = _screen(raw)
    resolved = _resolve_env(screened, "")
    try:
        config = Config.model_validate(resolved)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = _path(first["loc"])
        message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise ConfigError(path, message) from None
    config.deployments()  # surface unknown providers and missing api_base now
    config.wildcards()
    config._check_fallbacks()
    config._skipped = skipped + _foreign_callbacks(config.litellm_settings)
    return config


def _screen(raw: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The config without the LiteLLM keys llmrelay skips (their paths are returned); a key it
    must not ignore, or does not know, stops here with its path."""
    skipped: list[str] = []
    out = _keep(raw, "top", "", Config.model_fields, skipped)
    for name, model in _SETTINGS.items():
        if out.get(name, {}) is None:
            del out[name]  # an empty section, as LiteLLM configs often have
        elif isinstance(out.get(name), dict):
            out[name] = _keep(out[name], name, name, model.model_fields, skipped)
    if isinstance(out.get("model_list"), list):
        entries = []
        for i, entry in enumerate(out["model_list"]):
            if isinstance(entry, dict):
                where = f"model_list[{i}]"
                entry = _keep(entry, "model", where, ModelEntry.model_fields, skipped)
                for part, known in (("litellm_params", LitellmParams.model_fields), ("model_info", MODEL_INFO_KEYS)):
                    if isinstance(entry.get(part), dict):
                        entry[part] = _keep(entry[part], part, f"{where}.{part}", known, skipped)
            entries.append(entry)
        out["model_list"] = entries
    return out, skipped


def _keep(section: dict[str, Any], kind: str, path: str, known: Collection[str], skipped: list[str]) -> dict[str, Any]:
    kept = {}
    for key, value in section.items():
        where = f"{path}.{key}" if path else str(key)
        if key in known:
            kept[key] = value
            continue
        verdict = config_keys.classify(kind, str(key), known)
        if verdict == "skip":
            skipped.append(where)
        elif verdict == "refuse":
            what = config_keys.governs(kind, str(key))
            raise ConfigError(where, f"not supported yet: llmrelay does not implement {what}, and ignoring "
                                     "this key would change what requests do; remove it to start")  # fmt: skip
        else:
            hint = config_keys.suggestion(kind, str(key), known)
            raise ConfigError(where, "unknown key" + (f"; did you mean '{hint}'?" if hint else ""))
    return kept


def _resolve_env(value: Any, path: str) -> Any:
    if isinstance(value, dict):
        return {k: _resolve_env(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_env(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str) and value.startswith("os.environ/"):
        name = value.removeprefix("os.environ/")
        env = os.environ.get(name)
        if env is None:
            raise ConfigError(path, f"environment variable {name} is not set")
        return env
    return value


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
