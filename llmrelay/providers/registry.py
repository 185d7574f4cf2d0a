"""Providers as data: one row per provider, and the deployments built from them.

Adding an OpenAI-compatible provider is one `ProviderSpec` row in `PROVIDERS`, not a module.
A `Deployment` is one concrete upstream (provider + model + base URL + key): the unit the
router picks, the store remembers, and `previous_response_id` is pinned to.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .. import errors
from . import cloud
from .aws_auth import SigV4

Api = Literal["responses", "chat", "anthropic", "gemini", "bedrock", "vertex_gemini", "vertex_anthropic", "mock"]
Auth = Literal["bearer", "api-key", "x-api-key", "x-goog-api-key", "none"]


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    name: str
    api: Api
    api_base: str | None  # None: the user must give one (api_base= or the env var)
    key_env: tuple[str, ...] = ()
    base_env: tuple[str, ...] = ()
    auth: Auth = "bearer"
    key_required: bool = True
    headers: tuple[tuple[str, str], ...] = ()
    # Appended to a base URL that names no API version ("http://host", as google-genai's
    # base_url takes it); a base that ends in one ("/v1beta", "/v1") is used as is.
    version_path: str | None = None
    # Models whose name starts with a prefix here speak another API (Vertex serves Claude too).
    model_apis: tuple[tuple[str, Api], ...] = ()


_P = ProviderSpec
PROVIDERS: dict[str, ProviderSpec] = {
    p.name: p
    for p in (
        _P("openai", "responses", "https://api.openai.com/v1", ("OPENAI_API_KEY",), ("OPENAI_BASE_URL", "OPENAI_API_BASE")),
        _P("azure", "responses", None, ("AZURE_API_KEY", "AZURE_OPENAI_API_KEY"), ("AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT"), auth="api-key"),
        _P("xai", "responses", "https://api.x.ai/v1", ("XAI_API_KEY",), ("XAI_API_BASE",)),
        _P("openrouter", "responses", "https://openrouter.ai/api/v1", ("OPENROUTER_API_KEY",), ("OPENROUTER_API_BASE",)),
        _P("hosted_vllm", "responses", None, ("HOSTED_VLLM_API_KEY",), ("HOSTED_VLLM_API_BASE",), key_required=False),
        _P("ollama", "responses", "http://localhost:11434/v1", ("OLLAMA_API_KEY",), ("OLLAMA_API_BASE",), key_required=False),
        _P("anthropic", "anthropic", "https://api.anthropic.com/v1", ("ANTHROPIC_API_KEY",), ("ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL"), auth="x-api-key", headers=(("anthropic-version", "2023-06-01"),)),
        _P("gemini", "gemini", "https://generativelanguage.googleapis.com/v1beta", ("GEMINI_API_KEY", "GOOGLE_API_KEY"), ("GEMINI_API_BASE",), auth="x-goog-api-key", version_path="v1beta"),
        _P("groq", "chat", "https://api.groq.com/openai/v1", ("GROQ_API_KEY",), ("GROQ_API_BASE",)),
        _P("mistral", "chat", "https://api.mistral.ai/v1", ("MISTRAL_API_KEY",), ("MISTRAL_API_BASE",)),
        _P("deepseek", "chat", "https://api.deepseek.com/v1", ("DEEPSEEK_API_KEY",), ("DEEPSEEK_API_BASE",)),
        _P("together_ai", "chat", "https://api.together.xyz/v1", ("TOGETHER_API_KEY", "TOGETHERAI_API_KEY"), ("TOGETHER_API_BASE",)),
        _P("fireworks_ai", "chat", "https://api.fireworks.ai/inference/v1", ("FIREWORKS_API_KEY", "FIREWORKS_AI_API_KEY"), ("FIREWORKS_API_BASE",)),
        _P("ollama_chat", "chat", "http://localhost:11434/v1", ("OLLAMA_API_KEY",), ("OLLAMA_API_BASE",), key_required=False),
        _P("bedrock", "bedrock", None, key_required=False, auth="none"),  # SigV4-signed: see bedrock_settings
        _P("mock", "mock", "mock://", key_required=False, auth="none"),
        _P("vertex_ai", "vertex_gemini", "", (), ("VERTEXAI_API_BASE",), auth="none", key_required=False, model_apis=(("claude", "vertex_anthropic"),)),
        _P("azure_ai", "responses", None, ("AZURE_AI_API_KEY",), ("AZURE_AI_API_BASE",), auth="api-key"),
    )
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Deployment:
    """One upstream endpoint serving one model. `id` is stable across processes."""

    provider: ProviderSpec
    model: str  # the upstream's own model name, without the provider prefix
    api_base: str
    api_key: str | None = None
    api_version: str | None = None
    model_name: str = ""  # the public name clients ask for
    timeout: float | None = None
    stream_timeout: float | None = None
    max_retries: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    id: str = ""
    credentials: cloud.RequestAuth | None = field(default=None, hash=False, compare=False)

    def auth_headers(self) -> dict[str, str]:
        h = dict(self.provider.headers)
        if self.api_key and self.provider.auth == "bearer":
            h["authorization"] = f"Bearer {self.api_key}"
        elif self.api_key and self.provider.auth != "none":
            h[self.provider.auth] = self.api_key
        h.update(self.headers)
        return h

    def url(self, path: str) -> str:
        """Absolute URL of `path` (e.g. "/responses", "/responses/{id}/cancel") on this deployment."""
        if self.provider.name == "azure":
            return cloud.azure_url(self.api_base, self.api_version, path)
        if self.provider.name == "azure_ai":
            return cloud.azure_ai_url(self.api_base, path)
        return self.api_base + path


def split_model(model: str) -> tuple[ProviderSpec, str]:
    """ "openai/o1-pro" -> (openai, "o1-pro"). A bare name ("gpt-4o") means OpenAI."""
    prefix, sep, rest = model.partition("/")
    if not sep:
        return PROVIDERS["openai"], model
    spec = PROVIDERS.get(prefix)
    if spec is None or not rest:
        known = ", ".join(sorted(PROVIDERS))
        raise errors.bad_request(
            f"Unknown provider {prefix!r} in model {model!r}. Known providers: {known}. "
            "Write the model as '<provider>/<model>', e.g. 'openai/gpt-4o'.",
            param="model",
            code="unknown_provider",
        )
    return spec, rest


_VERSION = re.compile(r"/v\d+(?:alpha|beta)?\d*$")


def _env(names: tuple[str, ...]) -> str | None:
    for name in names:
        if value := os.environ.get(name):
            return value
    return None


def make_deployment(
    model: str,
    *,
    api_key: str | None = None,
    api_base: str | None = None,
    api_version: str | None = None,
    model_name: str | None = None,
    timeout: float | None = None,
    stream_timeout: float | None = None,
    max_retries: int | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
    deployment_id: str | None = None,
    chat_api: bool = False,
    cloud_settings: dict[str, Any] | None = None,
) -> Deployment:
    """Resolve a "<provider>/<model>" string plus overrides into a Deployment. `chat_api`
    makes an OpenAI-shaped provider speak Chat Completions instead of Responses.
    `cloud_settings` are the LiteLLM keys of cloud accounts (vertex_project, azure_ad_token, ...)."""
    spec, upstream_model = split_model(model)
    if chat_api and spec.api == "responses":
        spec = replace(spec, api="chat")
    if api := next((a for prefix, a in spec.model_apis if upstream_model.startswith(prefix)), None):
        spec = replace(spec, api=api)
    ident_extra = ""
    if spec.api == "bedrock":
        upstream_model, api_base, extra = bedrock_settings(upstream_model, api_base, extra or {})
        ident_extra = "\0".join(str(extra.get(k) or "") for k in AWS_PARAMS)
    base = api_base or _env(spec.base_env) or spec.api_base
    key = api_key or _env(spec.key_env)
    resolved = _cloud(spec, base, key, cloud_settings or {})
    if resolved is not None:
        base = resolved.base or base
        headers = {**dict(resolved.headers), **(headers or {})}
        if resolved.bearer:
            spec = replace(spec, auth="bearer")
    if not base:
        env = " or ".join(spec.base_env) or "api_base"
        raise errors.bad_request(
            f"Provider {spec.name!r} needs an api_base: pass api_base= or set {env}.",
            param="api_base",
        )
    if spec.name == "azure":
        api_version = api_version or os.environ.get("AZURE_API_VERSION")
    base = base.rstrip("/")
    if spec.version_path and not _VERSION.search(base):
        base += "/" + spec.version_path
    # Keys and bases are part of the identity: a response stored upstream lives in one
    # account, so only the same account may continue it natively.
    if cloud_settings:
        ident_extra += repr(sorted(cloud_settings.items()))
    ident = "\0".join((spec.name, spec.api, upstream_model, base, key or "", api_version or ""))
    ident += "\0" + ident_extra if ident_extra else ""
    return Deployment(
        provider=spec,
        model=upstream_model,
        api_base=base,
        api_key=key,
        api_version=api_version,
        model_name=model_name or model,
        timeout=timeout,
        stream_timeout=stream_timeout,
        max_retries=max_retries,
        headers=tuple((headers or {}).items()),
        extra=extra or {},
        id=deployment_id or "dep_" + hashlib.sha256(ident.encode()).hexdigest()[:24],
        credentials=SigV4(extra) if spec.api == "bedrock" else resolved.credentials if resolved else None,
    )


def _cloud(spec: ProviderSpec, base: str | None, key: str | None, settings: dict[str, Any]) -> cloud.Resolved | None:
    """The base URL and credentials a cloud provider's own settings make (None: the plain row)."""
    if spec.api in cloud.VERTEX_PUBLISHERS:
        return cloud.vertex_base(spec.api, base, settings)
    if spec.name == "azure":
        return cloud.azure_auth(key, settings)
    if spec.name == "azure_ai" and base:
        auth = cloud.azure_auth(key, settings)
        bearer = key is not None and cloud.azure_ai_bearer(base)
        return cloud.Resolved("", auth.credentials, auth.headers) if auth else cloud.Resolved("", bearer=bearer)
    return None


# -- AWS Bedrock --------------------------------------------------------------------------------

# litellm_params keys (LiteLLM's names) a Bedrock deployment takes; they travel in `extra`.
AWS_PARAMS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token", "aws_region_name",
              "aws_profile_name", "aws_bedrock_runtime_endpoint", "aws_role_name", "aws_session_name",
              "aws_web_identity_token", "aws_sts_endpoint")  # fmt: skip


def bedrock_settings(model: str, api_base: str | None, extra: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """(model id, endpoint, extra with the region and route) of a `bedrock/...` model:
    "converse/<id>" and "invoke/<id>" pick the API; the endpoint is `api_base`, then
    `aws_bedrock_runtime_endpoint`, then the region's (AWS_REGION, default us-east-1)."""
    if importlib.util.find_spec("botocore") is None:
        raise errors.bad_request(
            "Provider 'bedrock' signs its requests with botocore: pip install 'llmrelay[bedrock]'.",
            param="model",
            code="missing_dependency",
        )
    extra = dict(extra)
    route, sep, rest = model.partition("/")
    if sep and route in ("converse", "invoke"):
        model, extra["bedrock_route"] = rest, route
    region = extra.get("aws_region_name") or _env(("AWS_REGION", "AWS_DEFAULT_REGION")) or "us-east-1"
    extra["aws_region_name"] = region
    endpoint = extra.get("aws_bedrock_runtime_endpoint") or _env(("AWS_BEDROCK_RUNTIME_ENDPOINT",))
    return model, api_base or endpoint or f"https://bedrock-runtime.{region}.amazonaws.com", extra


def with_provider(model: str, custom_llm_provider: str | None) -> str:
    """`custom_llm_provider="anthropic"` with "claude-x" -> "anthropic/claude-x" (LiteLLM's way)."""
    if custom_llm_provider and not model.startswith(custom_llm_provider + "/"):
        return f"{custom_llm_provider}/{model}"
    return model


_ADDRESS = ("api_key", "api_base", "base_url", "api_version", "custom_llm_provider")


def stored_deployment(known: Deployment | None, model: str, options: dict[str, Any]) -> Deployment | None:
    """Where to reach a response an upstream keeps: `known` (the deployment that created it,
    when this process has it), with the caller's api_key / api_base / api_version /
    custom_llm_provider in place of its own. A process that never saw that deployment has
    only those options: then the provider defaults to OpenAI, and `model` (the response's)
    only fills the name, since the upstream finds the response by its id."""
    if not any(options.get(k) for k in _ADDRESS):
        return known
    provider = options.get("custom_llm_provider") or (known.provider.name if known else "openai")
    base = known if known is not None and known.provider.name == provider else None
    dep = make_deployment(
        f"{provider}/{base.model if base else model or 'unknown'}",
        api_key=options.get("api_key") or (base.api_key if base else None),
        api_base=options.get("api_base") or options.get("base_url") or (base.api_base if base else None),
        api_version=options.get("api_version") or (base.api_version if base else None),
    )
    if base is None:
        return dep
    credentials = dep.credentials or (base.credentials if dep.api_key is None else None)
    return replace(
        dep, timeout=base.timeout, max_retries=base.max_retries, headers=base.headers, credentials=credentials
    )


def require_key(dep: Deployment) -> None:
    signed = dep.credentials is not None or any(k == "authorization" for k, _ in dep.headers)
    if dep.provider.key_required and not dep.api_key and not signed:
        env = " or ".join(dep.provider.key_env)
        entra = (
            ", azure_ad_token, or install azure-identity (llmrelay[azure])"
            if dep.provider.name.startswith("azure")
            else ""
        )
        raise errors.status_error(
            401,
            f"No API key for provider {dep.provider.name!r}: pass api_key= or set {env}{entra}.",
            code="missing_api_key",
        )
