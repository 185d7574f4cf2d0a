"""AWS STS's AssumeRole and AssumeRoleWithWebIdentity as the Bedrock fake serves them (``POST /``): the Query
protocol (a form body, ``Action=...&Version=2011-06-15``) answered in STS's XML, as botocore's ``sts`` client
parses it. AssumeRole must be SigV4-signed (service ``sts``) by a key the fake knows; the web-identity call is
unsigned and needs WEB_IDENTITY_TOKEN. Either one for ROLE_ARN issues fresh temporary credentials, which the
Bedrock routes then accept; any other role is AccessDenied, as STS answers it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from starlette.requests import Request
from starlette.responses import Response

ROLE_ARN = "arn:aws:iam::123456789012:role/llmrelay-bedrock"
WEB_IDENTITY_TOKEN = "eyJhbGciOiJSUzI1NiJ9.fake-oidc-subject.signature"
ASSUMED = "arn:aws:sts::123456789012:assumed-role/llmrelay-bedrock"
NS = "https://sts.amazonaws.com/doc/2011-06-15/"


def _xml(action: str, result: str) -> Response:
    body = (f'<{action}Response xmlns="{NS}"><{action}Result>{result}</{action}Result>'
            f"<ResponseMetadata><RequestId>{secrets.token_hex(16)}</RequestId></ResponseMetadata>"
            f"</{action}Response>")  # fmt: skip
    return Response(body, media_type="text/xml")


def _error(code: str, message: str, status: int = 403) -> Response:
    body = (f'<ErrorResponse xmlns="{NS}"><Error><Type>Sender</Type><Code>{code}</Code>'
            f"<Message>{escape(message)}</Message></Error><RequestId>{secrets.token_hex(16)}</RequestId>"
            "</ErrorResponse>")  # fmt: skip
    return Response(body, status, media_type="text/xml")


async def answer(
    request: Request, body: bytes, issued: dict[str, tuple[str, str | None]], verify: Callable[..., Any]
) -> Response:
    """One STS call; `issued` is where the credentials it hands out become valid for the fake."""
    form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
    action = form.get("Action", "")
    if action not in ("AssumeRole", "AssumeRoleWithWebIdentity") or form.get("Version") != "2011-06-15":
        return _error("InvalidAction", f"Could not find operation {action} for version {form.get('Version')}", 400)
    if action == "AssumeRole":
        verify(request, body, service="sts")
    elif form.get("WebIdentityToken") != WEB_IDENTITY_TOKEN:
        return _error("InvalidIdentityToken", "Couldn't retrieve verification key from your identity provider", 400)
    role, session = form.get("RoleArn", ""), form.get("RoleSessionName", "")
    if role != ROLE_ARN or not session:
        return _error("AccessDenied", f"Not authorized to perform sts:{action} on {role}")
    access, secret, token = "ASIA" + secrets.token_hex(8).upper(), secrets.token_hex(20), secrets.token_urlsafe(48)
    issued[access] = (secret, token)
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + int(form.get("DurationSeconds", 3600))))
    result = (f"<Credentials><AccessKeyId>{access}</AccessKeyId><SecretAccessKey>{secret}</SecretAccessKey>"
              f"<SessionToken>{token}</SessionToken><Expiration>{expires}</Expiration></Credentials>"
              f"<AssumedRoleUser><AssumedRoleId>AROAFAKE:{escape(session)}</AssumedRoleId>"
              f"<Arn>{ASSUMED}/{escape(session)}</Arn></AssumedRoleUser>")  # fmt: skip
    if action == "AssumeRoleWithWebIdentity":
        result += ("<SubjectFromWebIdentityToken>fake-oidc-subject</SubjectFromWebIdentityToken>"
                   "<Audience>sts.amazonaws.com</Audience>")  # fmt: skip
    return _xml(action, result)
