"""Id minting. Response ids are unguessable: they are the only key to a stored response."""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    """`resp_` + 50 hex digits, the same length OpenAI's own ids have (and `msg_`, `fc_`, ...)."""
    return f"{prefix}_{secrets.token_hex(25)}"
