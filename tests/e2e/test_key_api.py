"""The key API in LiteLLM's shapes, through the proxy on Postgres, with the openai SDK as client."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from openai import OpenAI

from tests.e2e.gateway_helpers import MASTER, PG_URL, call, ok, until
from tests.e2e.proxy_process import start_proxy, write_config
from tests.fakes.process import FakeServer


def _config(fake: FakeServer) -> dict:
    entry = {"litellm_params": {"model": "openai/gpt-4o", "api_key": "k", "api_base": fake.url}}
    return {"model_list": [{"model_name": "gpt", **entry}, {"model_name": "other", **entry}],
            "general_settings": {"master_key": MASTER, "database_url": PG_URL}}  # fmt: skip


def _client(proxy, key: str) -> OpenAI:  # type: ignore[no-untyped-def]
    return OpenAI(base_url=proxy.url, api_key=key, max_retries=0)


def test_generate_info_list_update_block_regenerate_delete(openai_fake: FakeServer, tmp_path: Path) -> None:
    config = str(write_config(_config(openai_fake), tmp_path))
    with start_proxy("--config", config, store=None) as a, start_proxy("--config", config, store=None) as b:
        team = ok(a, "/team/new", {"team_alias": "research", "max_budget": 100})["team_id"]
        made = ok(a, "/key/generate", {
            "key_alias": f"svc-{team}", "models": ["gpt"], "max_budget": 10, "budget_duration": "30d",
            "rpm_limit": 100, "tpm_limit": 10_000, "max_parallel_requests": 5, "duration": "1h", "team_id": team,
            "user_id": f"u-{team}", "metadata": {"env": "test"},
            "allowed_routes": ["/v1/responses*", "/v1/models", "/key/info"],
        })  # fmt: skip
        key, token = made["key"], made["token"]
        assert key.startswith("sk-llmrelay-") and len(token) == 64 and made["key_name"] == f"sk-...{key[-4:]}"
        assert made["models"] == ["gpt"] and made["expires"] and made["budget_reset_at"] and made["spend"] == 0

        # the plain key is never shown again; a key reads its own info, and nobody else's
        info = ok(b, "/key/info?key=" + token)
        assert info["key"] == token and "sk-llmrelay-" not in str(info) and info["info"]["team_id"] == team
        assert ok(b, "/key/info", auth=key)["info"]["key_alias"] == f"svc-{team}"
        assert call(b, "/key/info?key=" + ok(a, "/key/generate", {})["token"], auth=key)[0] == 403
        assert call(a, "/key/generate", {}, auth=key)[0] == 403  # only the master manages keys

        client = _client(b, key)
        assert client.responses.create(model="gpt", input="hi").status == "completed"
        with pytest.raises(openai.PermissionDeniedError) as denied:
            client.responses.create(model="other", input="hi")
        assert denied.value.code == "model_not_allowed"
        for other in (client.responses.input_tokens.count, client.responses.compact):
            with pytest.raises(openai.PermissionDeniedError):
                other(model="other", input="hi")
        assert [m.id for m in client.models.list()] == ["gpt"]
        assert {m.id for m in _client(b, MASTER).models.list()} == {"gpt", "other"}
        with pytest.raises(openai.PermissionDeniedError):  # not in allowed_routes
            client.conversations.create()

        # paginated listing, filtered by team
        for n in range(3):
            ok(a, "/key/generate", {"team_id": team, "key_alias": f"more-{n}"})
        page = ok(a, f"/key/list?team_id={team}&page=2&size=3")
        assert page["total_count"] == 4 and page["total_pages"] == 2 and page["current_page"] == 2
        assert len(page["keys"]) == 1 and isinstance(page["keys"][0], str)
        full = ok(a, f"/key/list?team_id={team}&size=10&return_full_object=true")
        assert full["keys"][0]["token"] == token

        # an update on one instance reaches the other at once
        ok(a, "/key/update", {"key": key, "models": ["gpt", "other"]})
        until(lambda: call(b, "/v1/models", auth=key)[1]["data"].__len__() == 2)
        ok(a, "/key/block", {"key": key})
        until(lambda: call(b, "/v1/models", auth=key)[0] == 403)
        with pytest.raises(openai.PermissionDeniedError) as blocked:
            client.responses.create(model="gpt", input="hi")
        assert blocked.value.code == "key_blocked"
        ok(a, "/key/unblock", {"key": key})
        until(lambda: call(b, "/v1/models", auth=key)[0] == 200)

        # regenerate: a new key, the same record and the same responses; the old key is refused
        mine = client.responses.create(model="gpt", input="kept")
        fresh = ok(a, f"/key/{key}/regenerate", {})
        assert fresh["key"] != key and fresh["key_id"] == made["key_id"] and fresh["team_id"] == team
        until(lambda: call(b, "/v1/models", auth=key)[0] == 401)
        assert _client(b, fresh["key"]).responses.retrieve(mine.id).output_text == mine.output_text

        assert ok(a, "/key/delete", {"keys": [fresh["key"]]})["deleted_keys"] == [fresh["key"]]
        until(lambda: call(b, "/v1/models", auth=fresh["key"])[0] == 401)
        with pytest.raises(openai.AuthenticationError):
            _client(b, fresh["key"]).responses.create(model="gpt", input="hi")


def test_an_expired_key_is_refused(openai_fake: FakeServer, tmp_path: Path) -> None:
    with start_proxy("--config", str(write_config(_config(openai_fake), tmp_path)), store=None) as proxy:
        key = ok(proxy, "/key/generate", {"duration": "1s"})["key"]
        until(lambda: call(proxy, "/v1/models", auth=key)[0] == 401, timeout=5)
        with pytest.raises(openai.AuthenticationError) as exc:
            _client(proxy, key).responses.create(model="gpt", input="hi")
        assert exc.value.code == "expired_key"


@pytest.mark.parametrize(
    ("body", "param"),
    [({"max_budget": -1}, "max_budget"), ({"budget_duration": "1y"}, "budget_duration"),
     ({"rpm_limit": "10"}, "rpm_limit"), ({"models": "gpt"}, "models"), ({"team_id": "no-such-team"}, "team_id"),
     ({"soft_budget": 1}, "soft_budget")],
)  # fmt: skip
def test_bad_key_fields_are_400s_naming_the_field(openai_fake: FakeServer, tmp_path: Path, body: dict,
                                                  param: str) -> None:  # fmt: skip
    with start_proxy("--config", str(write_config(_config(openai_fake), tmp_path)), store=None) as proxy:
        status, error, _ = call(proxy, "/key/generate", body)
        assert status == 400 and error["error"]["param"] == param
