"""What a key may reach: its `models` (with its user's and team's: each list that is set must
allow the model) and its `allowed_routes`; blocked and expired keys reach nothing."""

from __future__ import annotations

import time
from collections.abc import Iterable

from .. import errors
from ..providers.base import Call
from .directory import Caller
from .entities import ADMIN_ROLE
from .stage import Outcome

ALL_MODELS = frozenset({"*", "all-proxy-models"})


def may_use(caller: Caller, *names: str) -> bool:
    for e in caller.entities():
        models = e.record.get("models")
        if models and not ALL_MODELS.intersection(models) and not any(n in models for n in names if n):
            return False
    return True


def visible(caller: Caller | None, names: Iterable[str]) -> list[str]:
    """The model names `/v1/models` shows this caller."""
    return [n for n in names if caller is None or may_use(caller, n)]


def is_admin(caller: Caller) -> bool:
    """A key whose user has LiteLLM's `proxy_admin` role manages the proxy as the master key does."""
    return caller.user is not None and caller.user.record.get("user_role") == ADMIN_ROLE


def admit(caller: Caller, path: str) -> None:
    """Refuse a key that is expired, blocked (or whose user or team is), or not allowed on `path`."""
    expires = caller.key.record.get("expires_at")
    if expires is not None and expires <= time.time():
        raise errors.status_error(401, "This key has expired.", type="authentication_error", code="expired_key")
    for e in caller.entities():
        if e.record.get("blocked"):
            what = "key" if e.kind == "key" else f"key's {e.kind}"
            raise errors.status_error(403, f"This {what} is blocked.", type="permission_error", code="key_blocked")
    routes = caller.key.record.get("allowed_routes")
    if routes and not _route_allowed(routes, path):
        raise errors.status_error(
            403, f"This key may not call {path}.", type="permission_error", code="route_not_allowed"
        )


def _route_allowed(routes: list[str], path: str) -> bool:
    bare = path.removeprefix("/v1")
    for route in routes:
        r = route.removeprefix("/v1")
        if r == bare or (r.endswith("*") and bare.startswith(r[:-1])):
            return True
    return False


class ModelAccess:
    """The stage that refuses a model the key may not use: 403 before any upstream call."""

    async def before(self, call: Call) -> None:
        caller: Caller | None = call.meta.get("caller")
        if caller is not None and not may_use(caller, str(call.params.get("model")), call.deployment.model_name):
            raise errors.status_error(
                403,
                f"This key may not use model '{call.params.get('model')}'.",
                type="permission_error",
                param="model",
                code="model_not_allowed",
            )

    def after(self, call: Call, outcome: Outcome) -> None:
        return None
