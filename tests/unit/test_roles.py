"""User roles: LiteLLM's `user_role` on a user, and `proxy_admin` making its keys admins."""

from __future__ import annotations

import pytest

from llmrelay import errors
from llmrelay.gateway.access import is_admin
from llmrelay.gateway.directory import Caller
from llmrelay.gateway.entities import ROLES, check
from llmrelay.store.base import Entity


def test_user_role_takes_litellms_roles_only() -> None:
    for role in ROLES:
        assert check("user", {"user_role": role}) == {"user_role": role}
    with pytest.raises(errors.APIStatusError) as bad:
        check("user", {"user_role": "root"})
    assert bad.value.status_code == 400 and bad.value.body["param"] == "user_role"
    with pytest.raises(errors.APIStatusError):  # a role belongs to a user, not to a key
        check("key", {"user_role": "proxy_admin"})


def test_only_a_proxy_admins_key_is_an_admin() -> None:
    key = Entity("key", "h", {"user_id": "u"})

    def caller(user: Entity | None) -> Caller:
        return Caller(key, user, None, 0.0)

    assert is_admin(caller(Entity("user", "u", {"user_role": "proxy_admin"})))
    assert not is_admin(caller(Entity("user", "u", {"user_role": "proxy_admin_viewer"})))
    assert not is_admin(caller(Entity("user", "u", {})))
    assert not is_admin(caller(None))
