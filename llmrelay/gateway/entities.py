"""Key, team and user records in LiteLLM's field names: checking a request body into a record,
and the record as the API shows it. Pure: no I/O."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from .. import errors
from .durations import seconds

Json = dict[str, Any]
LIMITS = ("rpm_limit", "tpm_limit", "max_parallel_requests")
_COMMON = ("models", "max_budget", "budget_duration", *LIMITS, "metadata", "blocked")
FIELDS = {
    "key": (*_COMMON, "key_alias", "duration", "team_id", "user_id", "allowed_routes"),
    "team": (*_COMMON, "team_id", "team_alias"),
    "user": (*_COMMON, "user_id", "user_email", "user_alias", "user_role"),
}
# LiteLLM's user roles; `proxy_admin` keys manage the proxy as the master key does (and use /ui)
ADMIN_ROLE = "proxy_admin"
ROLES = (ADMIN_ROLE, "proxy_admin_viewer", "internal_user", "internal_user_viewer")
# what identifies the entity in an update body, not a field to change
_SELECTORS = {"key": ("key",), "team": ("team_id",), "user": ("user_id",)}


def _bad(message: str, param: str) -> errors.APIStatusError:
    return errors.bad_request(message, param=param, code="invalid_value")


def check(kind: str, body: Json, *, update: bool = False) -> Json:
    """The record fields a generate / new / update body sets, checked; 400 naming the field."""
    allowed = FIELDS[kind]
    out: Json = {}
    for name, value in body.items():
        if name in _SELECTORS[kind] and update:
            continue
        if name not in allowed:
            raise errors.bad_request(
                f"Unknown or unsupported field '{name}' for a {kind}. Supported: {', '.join(allowed)}.",
                param=name,
                code="unknown_parameter",
            )
        out[name] = _value(name, value)
    if "duration" in out:  # a key's lifetime, from now
        d = out.pop("duration")
        out["expires_at"] = None if d is None else time.time() + seconds(d)
    return out


def _value(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in ("models", "allowed_routes"):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _bad(f"'{name}' must be a list of strings.", name)
        return value
    if name == "max_budget":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise _bad("'max_budget' must be a number of USD, 0 or more.", name)
        return float(value)
    if name in LIMITS:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _bad(f"'{name}' must be a whole number, 0 or more.", name)
        return value
    if name in ("budget_duration", "duration"):
        try:
            seconds(value)
        except ValueError as exc:
            raise _bad(f"'{name}': {exc}", name) from None
        return value
    if name == "metadata":
        if not isinstance(value, dict):
            raise _bad("'metadata' must be an object.", name)
        return value
    if name == "user_role":
        if value not in ROLES:
            raise _bad(f"'user_role' must be one of {', '.join(ROLES)}.", name)
        return value
    if name == "blocked":
        if not isinstance(value, bool):
            raise _bad("'blocked' must be true or false.", name)
        return value
    if not isinstance(value, str) or not value or "\0" in value:
        raise _bad(f"'{name}' must be a non-empty string.", name)
    return value


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def budget_seconds(record: Json) -> int | None:
    d = record.get("budget_duration")
    return seconds(d) if d else None
