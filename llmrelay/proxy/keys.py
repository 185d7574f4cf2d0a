"""Virtual keys, as LiteLLM's proxy offers them: `POST /key/generate` (master key only) mints
a key whose requests own their own responses, conversations and jobs; another key sees 404.
Only the key's SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from .. import errors
from ..ids import new_id
from ..store import ResponseStore

PREFIX = "sk-llmrelay-"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def generate(store: ResponseStore, alias: Any = None) -> dict[str, Any]:
    if alias is not None and not isinstance(alias, str):
        raise errors.bad_request("'key_alias' must be a string.", param="key_alias")
    key = PREFIX + secrets.token_urlsafe(32)
    owner = new_id("key")
    await store.add_key(digest(key), owner, alias)
    return {"key": key, "key_alias": alias, "token": owner}


async def delete(store: ResponseStore, keys: Any) -> dict[str, Any]:
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise errors.bad_request("'keys' must be an array of keys.", param="keys")
    return {"deleted_keys": [k for k in keys if await store.delete_key(digest(k))]}
