"""Fake Vertex AI upstream: Gemini and Claude under Vertex's publisher paths, behind Google OAuth.

Run with ``python -m tests.fakes.vertex_upstream --port N``; the health answer reports
``base_path: "/v1"``. Routes, under ``/v1`` (or ``/v1beta1``, as google-genai sends):

- ``POST /projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent``,
  ``:streamGenerateContent`` (``?alt=sse``) and ``:countTokens`` (Vertex's unwrapped body:
  ``contents``, ``systemInstruction``, ``tools``): the Gemini fake's replies
- ``POST .../publishers/anthropic/models/{m}:rawPredict`` / ``:streamRawPredict``: the Anthropic
  fake's replies; the body must carry ``anthropic_version: vertex-2023-10-16`` (or a dated
  Anthropic API version, which the anthropic SDK sends) and no ``model``
  (the model is the URL's); ``.../models/count-tokens:rawPredict`` counts, ``model`` in the body
- ``POST /token``: Google's OAuth token endpoint for service accounts (a JWT-bearer grant whose
  RS256 assertion is checked against the account's registered public key)

Every API call needs ``Authorization: Bearer <token from /token>`` that has not expired (else a
401 ``UNAUTHENTICATED``). Control routes besides the shared ones:

- ``POST /_fake/service_accounts``: ``{"client_email", "public_key" (PEM), "token_lifetime"?}``
  (seconds, default 3600)
- ``GET /_fake/tokens``: the tokens issued, ``[{"token", "client_email", "issued_at", "expires_at"}]``
- ``POST /_fake/expire_tokens``: every token issued so far expires now (as if revoked)

Reply scripts (``/_fake/enqueue``) go to the next generate / rawPredict call, with the Gemini or
Anthropic fake's script keys.
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from typing import Any
from urllib.parse import parse_qs

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from tests.fakes import anthropic_upstream, gemini_upstream
from tests.fakes.control import Control, json_response, serve
from tests.fakes.forward import Forwarder, Rewrite

Json = dict[str, Any]
BASE_PATH = "/v1"
ANTHROPIC_VERSION = "vertex-2023-10-16"
DATED_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}")  # the anthropic SDK's AnthropicVertex sends its own API version
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
AUDIENCE = "https://oauth2.googleapis.com/token"  # a grant's audience, whichever token_uri it is posted to
API_PATH = re.compile(
    r"/(v1|v1beta1)/projects/([^/]+)/locations/([^/]+)/publishers/(google|anthropic)/models/([^/:]+):([A-Za-z]+)"
)
UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid"
    " authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
)


def google_error(code: int, message: str, status: str) -> Response:
    return json_response({"error": {"code": code, "message": message, "status": status}}, code)


def anthropic_error(message: str) -> Response:
    body = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    return json_response(body, 400)


def oauth_error(error: str, description: str) -> Response:
    return json_response({"error": error, "error_description": description}, 400)


def unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class Accounts:
    """Service accounts (their public keys) and the access tokens issued to them."""

    def __init__(self) -> None:
        self.keys: dict[str, tuple[Any, float]] = {}
        self.tokens: dict[str, Json] = {}

    def grant(self, form: dict[str, str]) -> Response:
        if form.get("grant_type") != JWT_BEARER or not form.get("assertion"):
            return oauth_error("unsupported_grant_type", "Invalid grant_type.")
        try:
            head, payload, signature = form["assertion"].split(".")
            header, claims = orjson.loads(unb64(head)), orjson.loads(unb64(payload))
        except ValueError:
            return oauth_error(
                "invalid_grant", "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe."
            )
        account = self.keys.get(str(claims.get("iss")))
        if header.get("alg") != "RS256" or account is None:
            return oauth_error("invalid_grant", "Invalid JWT Signature.")
        key, lifetime = account
        try:
            key.verify(unb64(signature), f"{head}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return oauth_error("invalid_grant", "Invalid JWT Signature.")
        now = time.time()
        if claims.get("aud") != AUDIENCE or not float(claims.get("iat", 0)) - 60 <= now <= float(claims.get("exp", 0)):
            return oauth_error(
                "invalid_grant", "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe."
            )
        if SCOPE not in str(claims.get("scope", "")).split():
            return oauth_error("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        self.tokens[token] = {
            "token": token,
            "client_email": claims["iss"],
            "issued_at": now,
            "expires_at": now + lifetime,
        }
        return json_response({"access_token": token, "expires_in": int(lifetime), "token_type": "Bearer"})

    def valid(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        issued = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        return issued is not None and time.time() < issued["expires_at"]


def build_app() -> Starlette:
    gemini, anthropic = gemini_upstream.build_app(), anthropic_upstream.build_app()
    inner: list[Control] = [gemini.state.fake, anthropic.state.fake]
    control = Control("vertex", BASE_PATH, on_reset=lambda: [c.reset() for c in inner])
    accounts = Accounts()

    async def route(request: Request, record: Json) -> Rewrite | Response:
        if request.url.path == "/token" and request.method == "POST":
            form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
            return accounts.grant(form)
        match = API_PATH.fullmatch(request.url.path)
        if match is None or request.method != "POST":
            return gemini_upstream.html_404(request.url.path)
        if not accounts.valid(request):
            return google_error(401, UNAUTHENTICATED, "UNAUTHENTICATED")
        _, _, _, publisher, model, method = match.groups()
        body = record["body"] if isinstance(record["body"], dict) else {}
        if publisher == "google":
            return gemini_call(model, method, body, request)
        return anthropic_call(model, method, body)

    def gemini_call(model: str, method: str, body: Json, request: Request) -> Rewrite | Response:
        if method not in (*gemini_upstream.GENERATE, "countTokens"):
            return gemini_upstream.html_404(request.url.path)
        if method == "countTokens":
            if unknown := body.keys() - {"model", "contents", "systemInstruction", "tools", "generationConfig"}:
                name = sorted(unknown)[0]
                message = f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.'
                return google_error(400, message, "INVALID_ARGUMENT")
            body = {"generateContentRequest": {"model": f"models/{model}", **body}}
        return Rewrite(gemini, gemini.state.fake, f"/v1beta/models/{model}:{method}", {"x-goog-api-key": "vertex"},
                       orjson.dumps(body), query=request.url.query, scripted=method != "countTokens",
                       drop_headers=("authorization",))  # fmt: skip

    def anthropic_call(model: str, method: str, body: Json) -> Rewrite | Response:
        if method not in ("rawPredict", "streamRawPredict"):
            return google_error(
                400, f"Method {method} is not supported for publisher model {model}.", "INVALID_ARGUMENT"
            )
        version = str(body.get("anthropic_version") or "")
        if version != ANTHROPIC_VERSION and not DATED_VERSION.fullmatch(version):
            return anthropic_error(f"anthropic_version: Input should be '{ANTHROPIC_VERSION}'")
        body = {k: v for k, v in body.items() if k != "anthropic_version"}
        path = "/v1/messages"
        if model == "count-tokens":
            path += "/count_tokens"
        elif "model" in body:
            return anthropic_error("model: Extra inputs are not permitted")
        else:
            body["model"] = model
        headers = {"x-api-key": "vertex", "anthropic-version": "2023-06-01"}
        return Rewrite(anthropic, anthropic.state.fake, path, headers, orjson.dumps(body),
                       scripted=model != "count-tokens", drop_headers=("authorization",))  # fmt: skip

    async def register(request: Request) -> Response:
        spec = orjson.loads(await request.body())
        key = serialization.load_pem_public_key(spec["public_key"].encode())
        accounts.keys[spec["client_email"]] = (key, float(spec.get("token_lifetime") or 3600))
        return json_response({"registered": spec["client_email"]})

    async def tokens(request: Request) -> Response:
        return json_response(list(accounts.tokens.values()))

    async def expire(request: Request) -> Response:
        for token in accounts.tokens.values():
            token["expires_at"] = min(token["expires_at"], time.time())
        return json_response({"expired": len(accounts.tokens)})

    routes = [
        *control.routes(),
        Route("/_fake/service_accounts", register, methods=["POST"]),
        Route("/_fake/tokens", tokens, methods=["GET"]),
        Route("/_fake/expire_tokens", expire, methods=["POST"]),
        Mount("/", app=Forwarder(control, route)),
    ]
    app = Starlette(routes=routes)
    app.state.fake = control
    return app


def main(argv: list[str] | None = None) -> None:
    serve(lambda args: build_app(), __doc__.splitlines()[0], argv, server_header=False)


if __name__ == "__main__":
    main()
