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
from .registry import Deployment

SERVICE = "bedrock"
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


class Signer:
    """Per-process credential cache keyed by identity; `sign` adds SigV4 headers to a request.
    Safe across event loops (the SDK's background loop and a caller's own): the cache is
    filled under a thread lock, in the worker thread that resolves the chain."""

    def __init__(self) -> None:
        self._credentials: dict[tuple[str, ...], Any] = {}
        self._lock = threading.Lock()

    async def sign(self, req: HttpRequest, dep: Deployment) -> HttpRequest:
        bc = _botocore()
        frozen = await self._frozen(bc, dep)
        # Sign the URL exactly as aiohttp will send it (yarl normalises percent-escapes).
        url = str(yarl.URL(req.url))
        aws = bc.awsrequest.AWSRequest(method=req.method, url=url, data=req.body or b"", headers=req.headers)
        bc.auth.SigV4Auth(frozen, SERVICE, dep.extra["aws_region_name"]).add_auth(aws)
        return HttpRequest(req.method, url, dict(aws.headers.items()), req.body)

    async def _frozen(self, bc: Any, dep: Deployment) -> Any:
        x = dep.extra
        key = tuple(str(x.get(k) or "") for k in ("aws_access_key_id", "aws_secret_access_key",
                                                  "aws_session_token", "aws_profile_name"))  # fmt: skip
        creds = self._credentials.get(key)
        if creds is None:
            creds = await asyncio.to_thread(self._resolve_once, bc, key, x)
        if isinstance(creds, bc.credentials.RefreshableCredentials) and creds.refresh_needed(REFRESH_AHEAD):
            return await asyncio.to_thread(creds.get_frozen_credentials)
        return creds.get_frozen_credentials()

    def _resolve_once(self, bc: Any, key: tuple[str, ...], extra: dict[str, Any]) -> Any:
        with self._lock:  # concurrent first calls wait for one resolution
            if (creds := self._credentials.get(key)) is None:
                creds = self._credentials[key] = _resolve(bc, extra)
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
