"""Where the cloud providers live and how they authenticate: Vertex AI's publisher paths and
Google tokens, Azure's three URL shapes, Entra ID tokens, and Azure AI Foundry's v1 surface.

`resolve` turns a deployment's LiteLLM settings (`vertex_project`, `vertex_location`,
`vertex_credentials`, `azure_ad_token`, ...) into its base URL and credentials; the adapters
then only add the method's own path.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .. import errors
from ..transport import TokenAuth
from . import tokens

VERTEX_DEFAULT_LOCATION = "us-central1"
# Vertex serves each model family under its publisher's path.
VERTEX_PUBLISHERS = {"vertex_anthropic": "anthropic", "vertex_gemini": "google"}
_VERSIONED = re.compile(r"/v\d+(?:alpha|beta)?\d*$")
_AZURE_HOSTS = (".azure.com", ".azure.us", ".azure.cn")


@dataclass(frozen=True, slots=True)
class Resolved:
    base: str
    credentials: TokenAuth | None = None
    headers: tuple[tuple[str, str], ...] = ()
    bearer: bool = False  # send the api key as a bearer token instead of the provider's header


def _env(*names: str) -> str | None:
    return next((v for n in names if (v := os.environ.get(n))), None)


def vertex_host(location: str, api_base: str | None) -> str:
    """The API root: `api_base` when given (a private endpoint, a test server), else the
    location's regional host; `global` has no region prefix."""
    if api_base:
        base = api_base.rstrip("/")
        return base if _VERSIONED.search(base) else base + "/v1"
    host = "aiplatform.googleapis.com" if location == "global" else f"{location}-aiplatform.googleapis.com"
    return f"https://{host}/v1"


def vertex_base(api: str, api_base: str | None, settings: Mapping[str, Any]) -> Resolved:
    credentials = settings.get("vertex_credentials") or _env("VERTEXAI_CREDENTIALS", "VERTEX_CREDENTIALS")
    project = (
        settings.get("vertex_project")
        or _env("VERTEXAI_PROJECT", "VERTEX_PROJECT", "GOOGLE_CLOUD_PROJECT")
        or tokens.google_project(credentials)
    )
    if not project:
        raise errors.bad_request(
            "Vertex AI needs a project: set vertex_project (or VERTEXAI_PROJECT), or use a service-account "
            "file that names one.",
            param="vertex_project",
        )
    location = settings.get("vertex_location") or _env("VERTEXAI_LOCATION", "VERTEX_LOCATION")
    location = location or VERTEX_DEFAULT_LOCATION
    path = f"/projects/{project}/locations/{location}/publishers/{VERTEX_PUBLISHERS[api]}"
    return Resolved(vertex_host(location, api_base) + path, credentials=tokens.google_token(credentials))


def azure_auth(api_key: str | None, settings: Mapping[str, Any]) -> Resolved | None:
    """Entra ID in place of a key: a given `azure_ad_token` (or AZURE_AD_TOKEN), else
    azure-identity's credentials when it is installed. None when a key is used."""
    if api_key:
        return None
    if token := settings.get("azure_ad_token") or _env("AZURE_AD_TOKEN"):
        return Resolved("", headers=(("authorization", f"Bearer {token}"),))
    try:
        import azure.identity.aio  # noqa: F401
    except ImportError:
        return None  # the missing key is reported when a request needs it
    ids = (settings.get("tenant_id") or _env("AZURE_TENANT_ID"), settings.get("client_id") or _env("AZURE_CLIENT_ID"),
           settings.get("client_secret") or _env("AZURE_CLIENT_SECRET"))  # fmt: skip
    return Resolved("", credentials=tokens.azure_identity_token(*ids))


def azure_url(base: str, version: str | None, path: str) -> str:
    """Azure OpenAI's three shapes: a deployment URL (".../openai/deployments/<name>"), the dated
    API (".../openai/responses?api-version=2025-04-01-preview") and the v1 API
    (".../openai/v1/responses"), which needs no api-version at all."""
    if "/openai/deployments/" in base:
        return f"{base}{path}?api-version={version or 'preview'}"
    root = base.split("/openai", 1)[0]
    if version in (None, "v1", "latest"):
        return f"{root}/openai/v1{path}"
    if version == "preview":
        return f"{root}/openai/v1{path}?api-version=preview"
    return f"{root}/openai{path}?api-version={version}"


def azure_ai_url(base: str, path: str) -> str:
    """Azure AI Foundry: the OpenAI v1 surface under the resource, or under a project
    (".../api/projects/<name>"); a base given with "/openai/v1" or "/models" means the same."""
    root = re.split(r"/openai(?:/|$)|/models(?:/|$)", base, maxsplit=1)[0].rstrip("/")
    return f"{root}/openai/v1{path}"


def azure_ai_bearer(base: str) -> bool:
    """Foundry hosts on Azure take the key in `api-key`; other OpenAI-compatible endpoints
    (serverless deployments behind another host) take it as a bearer token."""
    host = urlsplit(base).hostname or ""
    return not host.endswith(_AZURE_HOSTS)
