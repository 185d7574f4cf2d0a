"""SigV4 signing of Bedrock requests with botocore, without blocking the event loop.

Credentials come from the deployment (`aws_access_key_id` / `aws_secret_access_key` /
`aws_session_token`), else from botocore's usual chain (environment, `aws_profile_name` or
the default profile, SSO, container and instance roles). The chain may read files or call a
metadata endpoint, so it is resolved in a thread, once per identity, and refreshed there
too before it expires; signing itself is CPU-only and runs on the loop.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import yarl

from .. import errors
from ..transport import HttpRequest

SERVICE = "bedrock"
IDENTITY = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token", "aws_profile_name")
REFRESH_AHEAD = 15 * 60  # botocore's own advisory refresh window, in seconds


def _botocore() -> Any:
    try:
        import botocore.auth
        import botocore.awsrequest
        import botocore.credentials
        import botocore.session
    except ImportError:
        raise errors.status_error(
            500,
            "Provider 'bedrock' needs botocore to sign requests: pip install 'llmrelay[bedrock]'.",
            code="missing_dependency",
        ) from None
    return botocore


class SigV4:
    """A Bedrock deployment's request auth: SigV4 headers over each attempt as it is sent
    (method, URL, body), so a retry after a backoff carries a fresh signature. The credentials
    are shared per identity by the process (one cache for every event loop: the SDK's
    background loop and a caller's own); a refused signature drops them, so the next attempt
    reads the chain again (rotated keys, a renewed role session)."""

    _cache: dict[tuple[str, ...], Any] = {}
    _lock = threading.Lock()

    def __init__(self, settings: dict[str, Any]) -> None:
        self._settings = settings  # the deployment's aws_* keys, the region resolved
        self._identity = tuple(str(settings.get(k) or "") for k in IDENTITY)

    async def headers(self, req: HttpRequest) -> dict[str, str]:
        bc = _botocore()
        frozen = await self._frozen(bc)
        # Sign the URL exactly as aiohttp will send it (yarl normalises percent-escapes).
        aws = bc.awsrequest.AWSRequest(method=req.method, url=str(yarl.URL(req.url)), data=req.body or b"",
                                       headers=req.headers)  # fmt: skip
        bc.auth.SigV4Auth(frozen, SERVICE, self._settings["aws_region_name"]).add_auth(aws)
        return dict(aws.headers.items())

    def refused(self, headers: dict[str, str]) -> None:
        with self._lock:
            self._cache.pop(self._identity, None)

    async def _frozen(self, bc: Any) -> Any:
        creds = self._cache.get(self._identity)
        if creds is None:
            creds = await asyncio.to_thread(self._resolve_once, bc)
        if isinstance(creds, bc.credentials.RefreshableCredentials) and creds.refresh_needed(REFRESH_AHEAD):
            return await asyncio.to_thread(creds.get_frozen_credentials)
        return creds.get_frozen_credentials()

    def _resolve_once(self, bc: Any) -> Any:
        with self._lock:  # concurrent first calls wait for one resolution
            if (creds := self._cache.get(self._identity)) is None:
                creds = self._cache[self._identity] = _resolve(bc, self._settings)
            return creds


def _resolve(bc: Any, extra: dict[str, Any]) -> Any:
    if extra.get("aws_access_key_id") and extra.get("aws_secret_access_key"):
        return bc.credentials.Credentials(
            extra["aws_access_key_id"], extra["aws_secret_access_key"], extra.get("aws_session_token")
        )
    try:
        creds = bc.session.Session(profile=extra.get("aws_profile_name")).get_credentials()
    except Exception as exc:  # a missing profile, an unreadable config file
        raise _no_credentials(f" ({type(exc).__name__}: {exc})") from None
    if creds is None:
        raise _no_credentials("")
    return creds


def _no_credentials(detail: str) -> errors.APIStatusError:
    return errors.status_error(
        401,
        "No AWS credentials for provider 'bedrock'"
        + detail
        + ": set aws_access_key_id and aws_secret_access_key (or aws_profile_name) in litellm_params, "
        "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or a profile or role.",
        code="missing_api_key",
    )
