"""Who is calling: the master key, a virtual key, or nobody. Shared by the HTTP routes and
the WebSocket mode, so both check keys the same way."""

from __future__ import annotations

import hmac
from typing import Any

from starlette.requests import HTTPConnection

from .. import errors
from ..gateway.access import admit
from ..gateway.directory import PREFIX, Caller, Directory, digest
from ..validate import CALL_OPTIONS

CALLER = "llmrelay.caller"  # where a virtual key's Caller is kept in the request scope


class Auth:
    def __init__(self, master_key: str | None, directory: Directory) -> None:
        self._master = master_key.encode() if master_key else None
        self.directory = directory

    @property
    def open(self) -> bool:
        """No master key: every caller is let in, as the master."""
        return self._master is None

    async def owner(self, conn: HTTPConnection) -> str | None:
        """Check the caller's key and return the owner its records are scoped to: None for
        the master key (or an open proxy), the key's own id for a virtual key, which must be
        neither expired nor blocked and allowed on this route."""
        header = conn.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            token = conn.headers.get("api-key") or conn.headers.get("x-api-key") or ""
        token = token.strip()
        if self._master is not None and hmac.compare_digest(token.encode(), self._master):
            return None
        if token.startswith(PREFIX) and (caller := await self.directory.caller(digest(token))):
            admit(caller, conn.url.path)
            conn.scope[CALLER] = caller
            return caller.owner
        if self._master is None:
            return None
        raise errors.status_error(
            401, "Invalid or missing API key. Send 'Authorization: Bearer <key>'.", code="invalid_api_key"
        )


def caller_of(conn: HTTPConnection) -> Caller | None:
    return conn.scope.get(CALLER)


def refuse_call_options(body: dict[str, Any]) -> None:
    """Per-call upstream options are the SDK's; through the proxy they would let a client
    point the server's keys at any URL."""
    for key in body:
        if key in CALL_OPTIONS:
            raise errors.bad_request(
                f"Unrecognized request argument supplied: {key}", param=key, code="unknown_parameter"
            )
