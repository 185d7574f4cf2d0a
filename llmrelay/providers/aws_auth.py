"""SigV4 signing of Bedrock requests with botocore, without blocking the event loop.

Credentials come from the deployment (`aws_access_key_id` / `aws_secret_access_key` /
`aws_session_token`), else from botocore's usual chain (environment, `aws_profile_name` or
the default profile, SSO, web identity, container and instance roles). With `aws_role_name`
(an ARN) those credentials assume that role through STS (`aws_session_name`, default
"llmrelay"); with `aws_web_identity_token` too, the role is assumed with that OIDC token
instead (AssumeRoleWithWebIdentity, as on EKS). `aws_sts_endpoint` overrides STS's URL. The
chain and STS may read files or call the network, so they run in a thread, once per identity,
and refresh there before the credentials expire; signing itself is CPU-only and runs on the loop.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from .. import errors
from ..transport import HttpRequest

SERVICE = "bedrock"
IDENTITY = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token", "aws_profile_name",
            "aws_role_name", "aws_session_name", "aws_web_identity_token", "aws_sts_endpoint")  # fmt: skip
REFRESH_AHEAD = 15 * 60  # botocore's own advisory refresh window, in seconds


def _botocore() -> Any:
    try:
        import botocore
        import botocore.auth
        import botocore.awsrequest
        import botocore.config
        import botocore.credentials
        import botocore.exceptions
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
        # The URL is sent as it is signed: its percent-escapes (the model id's `%3A`) untouched.
        aws = bc.awsrequest.AWSRequest(method=req.method, url=req.url, data=req.body or b"",
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
    if role := extra.get("aws_role_name"):
        return _assumed(bc, extra, str(role))
    return _base(bc, extra)


def _base(bc: Any, extra: dict[str, Any]) -> Any:
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


def _assumed(bc: Any, extra: dict[str, Any], role: str) -> Any:
    """The role's temporary credentials, renewed by botocore through `refresh` before expiry."""
    token = extra.get("aws_web_identity_token")
    session = bc.session.Session()
    if not token:  # AssumeRole is signed with the base identity; the web-identity call is not
        base = _base(bc, extra).get_frozen_credentials()
        session.set_credentials(base.access_key, base.secret_key, base.token)
    sts = session.create_client(
        "sts", region_name=extra["aws_region_name"], endpoint_url=extra.get("aws_sts_endpoint") or None,
        config=bc.config.Config(signature_version=bc.UNSIGNED) if token else None,
    )  # fmt: skip
    name = str(extra.get("aws_session_name") or "llmrelay")

    def refresh() -> dict[str, str]:
        try:
            if token:
                reply = sts.assume_role_with_web_identity(RoleArn=role, RoleSessionName=name, WebIdentityToken=token)
            else:
                reply = sts.assume_role(RoleArn=role, RoleSessionName=name)
        except bc.exceptions.ClientError as exc:
            raise errors.status_error(
                401, f"AWS STS refused to assume role {role}: {exc.response['Error'].get('Message') or exc}",
                code="invalid_api_key",
            ) from None  # fmt: skip
        creds = reply["Credentials"]
        return {"access_key": creds["AccessKeyId"], "secret_key": creds["SecretAccessKey"],
                "token": creds["SessionToken"], "expiry_time": creds["Expiration"].isoformat()}  # fmt: skip

    return bc.credentials.RefreshableCredentials.create_from_metadata(refresh(), refresh, "sts-assume-role")


def _no_credentials(detail: str) -> errors.APIStatusError:
    return errors.status_error(
        401,
        "No AWS credentials for provider 'bedrock'"
        + detail
        + ": set aws_access_key_id and aws_secret_access_key (or aws_profile_name) in litellm_params, "
        "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or a profile or role.",
        code="missing_api_key",
    )
