"""Test service accounts for the fake Vertex AI upstream: a fresh RSA key, registered with the
fake, in the JSON file shape Google issues (its `token_uri` is the fake's token endpoint)."""

from __future__ import annotations

import secrets
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.process import FakeServer, _request

PROJECT = "llmrelay-test"


def service_account(fake: FakeServer, *, token_lifetime: float = 3600, project: str = PROJECT) -> dict[str, Any]:
    """A service-account info dict the fake's /token endpoint will honour."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    email = f"relay-{secrets.token_hex(4)}@{project}.iam.gserviceaccount.com"
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    registration = {"client_email": email, "public_key": public.decode(), "token_lifetime": token_lifetime}
    _request("POST", fake.root + "/_fake/service_accounts", registration)
    return {
        "type": "service_account",
        "project_id": project,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem.decode(),
        "client_email": email,
        "client_id": str(secrets.randbelow(10**20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": fake.root + "/token",
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "universe_domain": "googleapis.com",
    }


def tokens(fake: FakeServer) -> list[dict[str, Any]]:
    """The access tokens the fake issued, oldest first."""
    return _request("GET", fake.root + "/_fake/tokens")


def expire_tokens(fake: FakeServer) -> None:
    _request("POST", fake.root + "/_fake/expire_tokens")
