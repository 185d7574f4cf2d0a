"""`GET /health` (LiteLLM's shape) and background health checks that feed the cooldowns."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from tests.e2e.proxy_process import ProxyProcess, start_proxy, write_config
from tests.fakes.process import FakeServer, free_port


def deployment(name: str, model: str, base: str, dep_id: str, key: str = "test-key") -> dict[str, Any]:
    return {"model_name": name, "litellm_params": {"model": model, "api_key": key, "api_base": base},
            "model_info": {"id": dep_id}}  # fmt: skip


def get(proxy: ProxyProcess, path: str, key: str | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(proxy.root + path, headers={"authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def fakes(openai_fake: FakeServer, anthropic_fake: FakeServer) -> tuple[FakeServer, FakeServer]:
    openai_fake.reset()
    anthropic_fake.reset()
    return openai_fake, anthropic_fake


def test_health_lists_healthy_and_unhealthy_deployments(fakes: tuple[FakeServer, ...], tmp_path: Path) -> None:
    openai_fake, anthropic_fake = fakes
    dead = f"http://127.0.0.1:{free_port()}/v1"
    config = {
        "model_list": [
            deployment("gpt", "openai/gpt-4o", openai_fake.url, "ok"),
            deployment("gpt", "openai/gpt-4o", dead, "dead"),
            deployment("claude", "anthropic/claude-x", anthropic_fake.url, "refused", key="bad-key"),
            {"model_name": "demo", "litellm_params": {"model": "mock/demo"}, "model_info": {"id": "demo"}},
        ],
        "general_settings": {"master_key": "sk-master"},
    }
    with start_proxy("--config", str(write_config(config, tmp_path))) as proxy:
        assert get(proxy, "/health")[0] == 401
        status, body = get(proxy, "/health", "sk-master")
    assert status == 200
    assert sorted(e["model_id"] for e in body["healthy_endpoints"]) == ["demo", "ok"]
    unhealthy = {e["model_id"]: e for e in body["unhealthy_endpoints"]}
    assert sorted(unhealthy) == ["dead", "refused"]
    assert (body["healthy_count"], body["unhealthy_count"]) == (2, 2)
    assert unhealthy["dead"]["api_base"] == dead and unhealthy["dead"]["model"] == "openai/gpt-4o"
    assert "Could not reach" in unhealthy["dead"]["error"] and "refused" in unhealthy["refused"]["error"]
    assert all("api_key" not in e for e in [*body["healthy_endpoints"], *body["unhealthy_endpoints"]])
    (probe,) = [r for r in openai_fake.requests() if r["path"].endswith("/responses")]
    assert probe["body"]["store"] is False and probe["body"]["max_output_tokens"] == 16


def test_background_checks_cool_an_unhealthy_deployment_down(fakes: tuple[FakeServer, ...], tmp_path: Path) -> None:
    openai_fake, _ = fakes
    dead = f"http://127.0.0.1:{free_port()}/v1"
    config = {
        "model_list": [
            deployment("gpt", "openai/gpt-4o", dead, "dead"),
            deployment("gpt", "openai/gpt-4o", openai_fake.url, "ok"),
        ],
        "general_settings": {"background_health_checks": True, "health_check_interval": 60},
    }
    with start_proxy("--config", str(write_config(config, tmp_path))) as proxy:
        deadline = time.monotonic() + 20
        while "dead" not in get(proxy, "/health/readiness")[1].get("cooldowns", {}):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        client = OpenAI(base_url=proxy.url, api_key="k", max_retries=0)
        for _ in range(6):  # with no retries, any pick of "dead" would fail
            assert client.responses.create(model="gpt", input="hi").output_text == "Echo (turns=1): hi"
        status, body = get(proxy, "/health")
    assert status == 200 and [e["model_id"] for e in body["unhealthy_endpoints"]] == ["dead"]
