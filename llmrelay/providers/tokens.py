"""Short-lived bearer tokens for cloud providers: Google (Vertex AI) and Entra ID (Azure).

google-auth refreshes synchronously over HTTP, so a refresh runs on one worker thread per
credential, one at a time, and every caller on any event loop awaits that same refresh. A
token is reused until it is close to expiry (REFRESH_MARGIN, or a quarter of a short lifetime).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC
from pathlib import Path
from typing import Any

from .. import errors

log = logging.getLogger("llmrelay")
REFRESH_MARGIN = 300.0  # seconds before expiry a token is replaced
GOOGLE_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
AZURE_SCOPE = "https://cognitiveservices.azure.com/.default"


def refresh_due(expiry: float, lifetime: float, now: float) -> bool:
    """Whether a token valid until `expiry` (issued `lifetime` seconds before it) needs replacing."""
    return now >= expiry - min(REFRESH_MARGIN, lifetime / 4)


class GoogleToken:
    """OAuth2 access tokens from google-auth credentials (a service account or ADC)."""

    def __init__(self, load: Callable[[], Any], clock: Callable[[], float] = time.time) -> None:
        self._load = load  # -> google.auth.credentials.Credentials, called on the worker thread
        self._clock = clock
        self._credentials: Any = None
        self._token: str | None = None
        self._expiry = 0.0
        self._lifetime = 0.0
        self._pending: Future[str] | None = None
        self._guard = threading.Lock()
        self._worker: ThreadPoolExecutor | None = None

    async def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {await self.token()}"}

    async def token(self) -> str:
        token = self._token
        if token is not None and not refresh_due(self._expiry, self._lifetime, self._clock()):
            return token
        with self._guard:
            if self._token is not None and not refresh_due(self._expiry, self._lifetime, self._clock()):
                return self._token
            if self._pending is None or self._pending.done():
                if self._worker is None:
                    self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmrelay-google-token")
                self._pending = self._worker.submit(self._refresh)
            pending = self._pending
        return await asyncio.wrap_future(pending)

    def refused(self, headers: dict[str, str]) -> None:
        with self._guard:
            if headers.get("authorization") == f"Bearer {self._token}":
                self._token = None

    def _refresh(self) -> str:
        try:
            from google.auth.transport.requests import Request

            if self._credentials is None:
                self._credentials = self._load()
            self._credentials.refresh(Request())
        except errors.APIStatusError:
            raise
        except Exception as exc:
            log.warning("Google access token refresh failed: %s: %s", type(exc).__name__, exc)
            raise errors.status_error(
                502,
                f"Could not get a Google access token for Vertex AI: {type(exc).__name__}. Check vertex_credentials "
                "(or GOOGLE_APPLICATION_CREDENTIALS) and that its token endpoint is reachable.",
                type="upstream_authentication_error",
                code="credentials_refresh_failed",
            ) from exc
        now = self._clock()
        expiry = self._credentials.expiry  # naive UTC, as google-auth keeps it
        until = expiry.replace(tzinfo=UTC).timestamp() if expiry is not None else now + 3600
        with self._guard:
            self._token, self._expiry, self._lifetime = self._credentials.token, until, max(0.0, until - now)
        return str(self._credentials.token)


def google_token(credentials: str | Mapping[str, Any] | None) -> GoogleToken:
    """A token source from `vertex_credentials` (a service-account file path, or its JSON as a
    string or mapping), else GOOGLE_APPLICATION_CREDENTIALS / application default credentials."""
    info = _service_account_info(credentials)
    _require_google_auth()

    def load() -> Any:
        import google.auth
        from google.oauth2 import service_account

        if info is not None:
            if info.get("type") == "service_account":
                return service_account.Credentials.from_service_account_info(info, scopes=GOOGLE_SCOPES)
            creds, _ = google.auth.load_credentials_from_dict(info, scopes=GOOGLE_SCOPES)
            return creds
        creds, _ = google.auth.default(scopes=GOOGLE_SCOPES)
        return creds

    return GoogleToken(load)


def google_project(credentials: str | Mapping[str, Any] | None) -> str | None:
    """The project a service-account file names, for a deployment that sets no vertex_project."""
    info = _service_account_info(credentials)
    if info is None and (path := os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")):
        info = _service_account_info(path)
    project = (info or {}).get("project_id") or (info or {}).get("quota_project_id")
    return str(project) if project else None


def _service_account_info(credentials: str | Mapping[str, Any] | None) -> dict[str, Any] | None:
    if credentials is None or credentials == "":
        return None
    if isinstance(credentials, Mapping):
        return dict(credentials)
    text = credentials.strip()
    if not text.startswith("{"):
        try:
            text = Path(text).expanduser().read_text()
        except OSError as exc:
            raise errors.bad_request(
                f"vertex_credentials: cannot read the credentials file {credentials!r}: {exc.strerror}.",
                param="vertex_credentials",
            ) from None
    try:
        info = json.loads(text)
    except ValueError:
        raise errors.bad_request(
            "vertex_credentials is neither a service-account JSON nor a path to one.", param="vertex_credentials"
        ) from None
    if not isinstance(info, dict):
        raise errors.bad_request("vertex_credentials must hold a JSON object.", param="vertex_credentials")
    return info


def _require_google_auth() -> None:
    try:
        import google.auth
        import google.auth.transport.requests  # noqa: F401
    except ImportError:
        raise errors.bad_request(
            "Vertex AI needs google-auth: pip install 'llmrelay[vertex]'.", param="model", code="missing_dependency"
        ) from None


class AzureIdentityToken:
    """Entra ID tokens from azure-identity's async credentials (DefaultAzureCredential, or a
    client secret when tenant_id / client_id / client_secret are given)."""

    def __init__(self, credential: Any) -> None:
        self._credential = credential

    async def headers(self) -> dict[str, str]:
        token = await self._credential.get_token(AZURE_SCOPE)
        return {"authorization": f"Bearer {token.token}"}

    def refused(self, headers: dict[str, str]) -> None:
        pass  # azure-identity caches by expiry and offers no eviction; the retry asks it again


def azure_identity_token(tenant_id: str | None, client_id: str | None, client_secret: str | None) -> AzureIdentityToken:
    try:
        from azure.identity.aio import ClientSecretCredential, DefaultAzureCredential
    except ImportError:
        raise errors.status_error(
            401,
            "No API key for provider 'azure': pass api_key= (AZURE_API_KEY), azure_ad_token, or install "
            "azure-identity (pip install 'llmrelay[azure]') for Entra ID credentials.",
            code="missing_api_key",
        ) from None
    if tenant_id and client_id and client_secret:
        return AzureIdentityToken(ClientSecretCredential(tenant_id, client_id, client_secret))
    return AzureIdentityToken(DefaultAzureCredential())
