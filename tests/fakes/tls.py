"""Certificates for TLS tests: a CA of their own, trusted through SSL_CERT_FILE."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ssl
from pathlib import Path
from typing import Any

import pytest

from llmrelay import http_client


def certificates(tmp: Path, name: str) -> tuple[Path, Path, Path]:
    """A CA, and a certificate for `name` it signed: (ca.pem, cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def cert(subject: str, key: Any, issuer: str, signer: Any, ca: bool) -> Any:
        b = x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        b = b.issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)])).public_key(key.public_key())
        b = b.serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
        b = b.not_valid_after(now + datetime.timedelta(days=1))
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        if not ca:
            b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
        return b.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = cert("test CA", ca_key, "test CA", ca_key, ca=True)
    leaf = cert(name, key, "test CA", ca_key, ca=False)
    paths = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return paths


async def trusted_https_server(tmp: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> asyncio.Server:
    """An https server on 127.0.0.1 with a certificate for `name`, from a CA llmrelay's client is
    told to trust (SSL_CERT_FILE); it answers every request on a connection with "secret"."""
    ca, cert, key = certificates(tmp, name)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    monkeypatch.setattr(http_client, "_tls", None)  # the client's context, made again with that CA
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecret")
                await writer.drain()

    return await asyncio.start_server(handler, "127.0.0.1", 0, ssl=served)
