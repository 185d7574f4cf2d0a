"""Rate limits per key, user and team: 429 with Retry-After and OpenAI's x-ratelimit-* headers;
with Redis the counters are shared by every instance."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
from openai import OpenAI

from tests.e2e.gateway_helpers import MASTER, PG_URL, ok, until
from tests.e2e.proxy_process import start_proxy, write_config
from tests.fakes.process import FakeServer

REDIS_URL = os.environ.get("LLMRELAY_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _config(fake: FakeServer, tmp_path: Path, *, redis: bool) -> str:
    params = {"model": "openai/gpt-4o", "api_key": "k", "api_base": fake.url}
    config = {"model_list": [{"model_name": "gpt", "litellm_params": params}, {"model_name": "demo",
              "litellm_params": {"model": "mock/demo"}}],
              "general_settings": {"master_key": MASTER, "database_url": PG_URL}}  # fmt: skip
    if redis:
        config["router_settings"] = {"redis_url": REDIS_URL}
    return str(write_config(config, tmp_path))


def _status(client: OpenAI) -> int | openai.RateLimitError:
    try:
        client.responses.create(model="demo", input="hi")
    except openai.RateLimitError as exc:
        return exc
    return 200


def test_exactly_rpm_limit_succeed_across_two_instances(openai_fake: FakeServer, tmp_path: Path) -> None:
    config = _config(openai_fake, tmp_path, redis=True)
    with start_proxy("--config", config, store=None) as a, start_proxy("--config", config, store=None) as b:
        key = ok(a, "/key/generate", {"rpm_limit": 7})["key"]
        clients = [OpenAI(base_url=p.url, api_key=key, max_retries=0) for p in (a, b)]
        with ThreadPoolExecutor(10) as pool:
            results = list(pool.map(lambda n: _status(clients[n % 2]), range(20)))
        assert results.count(200) == 7
        refused = next(r for r in results if r != 200)
        assert isinstance(refused, openai.RateLimitError) and refused.code == "rate_limit_exceeded"
        h = refused.response.headers
        assert h["x-ratelimit-limit-requests"] == "7" and h["x-ratelimit-remaining-requests"] == "0"
        assert 0 < float(h["x-ratelimit-reset-requests"].removesuffix("s")) <= 60
        assert 1 <= int(h["retry-after"]) <= 61


def test_a_team_limit_binds_its_keys_and_tokens_are_counted(openai_fake: FakeServer, tmp_path: Path) -> None:
    with start_proxy("--config", _config(openai_fake, tmp_path, redis=False), store=None) as proxy:
        team = ok(proxy, "/team/new", {"rpm_limit": 2})["team_id"]
        keys = [ok(proxy, "/key/generate", {"team_id": team})["key"] for _ in range(2)]
        clients = [OpenAI(base_url=proxy.url, api_key=k, max_retries=0) for k in keys]
        assert [_status(c) for c in (clients[0], clients[1])] == [200, 200]
        refused = _status(clients[0])
        assert isinstance(refused, openai.RateLimitError) and team in refused.message

        key = ok(proxy, "/key/generate", {"tpm_limit": 5})["key"]
        client = OpenAI(base_url=proxy.url, api_key=key, max_retries=0)
        assert _status(client) == 200  # under the limit when it starts; its tokens count after
        until(lambda: _status(client) != 200)
        tokens = _status(client)
        assert isinstance(tokens, openai.RateLimitError)
        assert tokens.response.headers["x-ratelimit-limit-tokens"] == "5"
        assert tokens.response.headers["x-ratelimit-remaining-tokens"] == "0"


def test_max_parallel_requests(openai_fake: FakeServer, tmp_path: Path) -> None:
    with start_proxy("--config", _config(openai_fake, tmp_path, redis=True), store=None) as proxy:
        key = ok(proxy, "/key/generate", {"max_parallel_requests": 1})["key"]
        client = OpenAI(base_url=proxy.url, api_key=key, max_retries=0)
        openai_fake.clear()
        openai_fake.enqueue({"delay": 3})
        slow = threading.Thread(target=lambda: client.responses.create(model="gpt", input="slow"))
        slow.start()
        until(lambda: len(openai_fake.requests()) == 1)  # the first call is at the upstream
        with pytest.raises(openai.RateLimitError) as exc:
            client.responses.create(model="gpt", input="second")
        assert "max_parallel_requests" in exc.value.message and exc.value.response.headers["retry-after"] == "1"
        slow.join()
        until(lambda: _status(client) == 200)  # the slot is free again


def test_an_unreachable_redis_serves_unlimited_and_says_so(tmp_path: Path) -> None:
    from tests.fakes.process import free_port

    config = {"model_list": [{"model_name": "demo", "litellm_params": {"model": "mock/demo"}}],
              "general_settings": {"master_key": MASTER},
              "router_settings": {"redis_url": f"redis://127.0.0.1:{free_port()}/0"}}  # fmt: skip
    with start_proxy("--config", str(write_config(config, tmp_path))) as proxy:
        key = ok(proxy, "/key/generate", {"rpm_limit": 1})["key"]
        client = OpenAI(base_url=proxy.url, api_key=key, max_retries=0)
        assert [_status(client), _status(client)] == [200, 200]
        assert "rate-limit counters unavailable" in proxy.output()
