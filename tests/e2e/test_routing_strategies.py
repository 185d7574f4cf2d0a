"""Routing strategies through the proxy, measured on fake upstreams: least-busy follows the
calls in flight, latency-based the faster deployment, usage-based the rpm/tpm limits."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI

from tests.e2e.proxy_process import ProxyProcess, start_proxy, write_config
from tests.fakes.process import FakeServer

HEADER = "x-llmrelay-deployment"


def deployment(name: str, fake: FakeServer, dep_id: str, **params: Any) -> dict[str, Any]:
    litellm_params = {"model": "openai/gpt-4o", "api_key": "test-key", "api_base": fake.url, **params}
    return {"model_name": name, "litellm_params": litellm_params, "model_info": {"id": dep_id}}


@pytest.fixture
def fakes(openai_fake: FakeServer, openai_fake_b: FakeServer) -> dict[str, FakeServer]:
    openai_fake.reset()
    openai_fake_b.reset()
    return {"a": openai_fake, "b": openai_fake_b}


def proxy_for(fakes: dict[str, FakeServer], tmp_path: Path, strategy: str, **params: dict[str, Any]) -> ProxyProcess:
    config = {
        "model_list": [deployment("gpt", fake, name, **params.get(name, {})) for name, fake in fakes.items()],
        "router_settings": {"routing_strategy": strategy},
    }
    return start_proxy("--config", str(write_config(config, tmp_path)))


def client(proxy: ProxyProcess) -> OpenAI:
    return OpenAI(base_url=proxy.url, api_key="k", max_retries=0)


def served(proxy: ProxyProcess, stream: bool = False) -> str:
    if stream:
        with client(proxy).responses.with_streaming_response.create(model="gpt", input="s", stream=True) as raw:
            for _ in raw.iter_lines():
                pass
            return raw.headers[HEADER]
    return client(proxy).responses.with_raw_response.create(model="gpt", input="x").headers[HEADER]


def test_least_busy_sends_requests_away_from_a_deployment_with_a_call_in_flight(
    fakes: dict[str, FakeServer], tmp_path: Path
) -> None:
    for fake in fakes.values():
        fake.enqueue({"hang_after_events": 3})
    with (
        proxy_for(fakes, tmp_path, "least-busy") as proxy,
        client(proxy).responses.with_streaming_response.create(model="gpt", input="hold", stream=True) as held,
    ):
        busy = held.headers[HEADER]
        lines = held.iter_lines()  # kept: a dropped iterator closes the stream
        next(lines)
        idle = "b" if busy == "a" else "a"
        fakes[idle].reset()  # its stall script was not needed
        assert [served(proxy) for _ in range(6)] == [idle] * 6
    assert len(fakes[busy].requests()) == 1


@pytest.mark.parametrize("stream", [False, True], ids=["reply", "first-token"])
def test_latency_based_routing_prefers_the_faster_deployment(
    fakes: dict[str, FakeServer], tmp_path: Path, stream: bool
) -> None:
    fakes["b"].enqueue({"delta_delay": 0.4} if stream else {"delay": 0.4})
    with proxy_for(fakes, tmp_path, "latency-based-routing") as proxy:
        assert sorted(served(proxy, stream) for _ in range(2)) == ["a", "b"]  # each measured once first
        assert [served(proxy, stream) for _ in range(5)] == ["a"] * 5
    assert len(fakes["b"].requests()) == 1


def same_minute(needed: float = 5.0) -> None:
    """Usage is counted per clock minute: start a test needing `needed` seconds inside one."""
    left = 60 - time.time() % 60
    if left < needed:
        time.sleep(left + 0.05)


def test_usage_based_routing_spills_at_the_rpm_limit_then_refuses(fakes: dict[str, FakeServer], tmp_path: Path) -> None:
    same_minute()
    with proxy_for(fakes, tmp_path, "usage-based-routing-v2", a={"rpm": 1}, b={"rpm": 1}) as proxy:
        assert sorted(served(proxy) for _ in range(2)) == ["a", "b"]
        with pytest.raises(openai.RateLimitError) as exc:
            served(proxy)
    assert exc.value.body["code"] == "no_deployments_available"
    assert len(fakes["a"].requests()) == 1 and len(fakes["b"].requests()) == 1


def test_usage_based_routing_counts_tokens_against_tpm(fakes: dict[str, FakeServer], tmp_path: Path) -> None:
    same_minute()
    with proxy_for(fakes, tmp_path, "usage-based-routing-v2", a={"tpm": 5}, b={"tpm": 100_000}) as proxy:
        first = served(proxy)
        # once "a" has used its 5 tokens (a reply here costs more), only "b" has room
        rest = [served(proxy) for _ in range(4)]
    # the fewest tokens first: "a" gets one request (first or second), then it is over its tpm
    assert rest == (["b"] * 4 if first == "a" else ["a", "b", "b", "b"])


def test_usage_limits_hold_across_instances_sharing_redis(fakes: dict[str, FakeServer], tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]  # other runs share the Redis server: ids of our own
    config = {
        "model_list": [deployment("gpt", fake, f"{name}-{run}", rpm=1) for name, fake in fakes.items()],
        "router_settings": {"routing_strategy": "usage-based-routing-v2", "redis_url": "redis://127.0.0.1:6379/0"},
    }
    path = str(write_config(config, tmp_path))
    with start_proxy("--config", path) as first, start_proxy("--config", path) as second:
        same_minute(15)
        one = served(first)
        other = served(second)  # the second instance knows the first one's request
        assert {one, other} == {f"a-{run}", f"b-{run}"}
        with pytest.raises(openai.RateLimitError):
            served(second)
        with pytest.raises(openai.RateLimitError):
            served(first)
    assert len(fakes["a"].requests()) == 1 and len(fakes["b"].requests()) == 1


def test_max_parallel_requests_caps_a_deployments_calls_in_flight(fakes: dict[str, FakeServer], tmp_path: Path) -> None:
    fakes["a"].enqueue({"hang_after_events": 3})
    config = {
        "model_list": [
            deployment("gpt", fakes["a"], "a", max_parallel_requests=1, order=1),
            deployment("gpt", fakes["b"], "b", order=2),
            deployment("solo", fakes["a"], "solo", max_parallel_requests=1),
        ],
    }
    with (
        start_proxy("--config", str(write_config(config, tmp_path))) as proxy,
        client(proxy).responses.with_streaming_response.create(model="gpt", input="hold", stream=True) as held,
    ):
        assert held.headers[HEADER] == "a"
        lines = held.iter_lines()  # kept: a dropped iterator closes the stream
        next(lines)
        assert [served(proxy) for _ in range(3)] == ["b"] * 3  # "a" is full: its tier spills to "b"
        fakes["a"].enqueue({"hang_after_events": 3})
        with client(proxy).responses.with_streaming_response.create(model="solo", input="h", stream=True) as solo:
            solo_lines = solo.iter_lines()
            next(solo_lines)
            with pytest.raises(openai.RateLimitError) as exc:
                client(proxy).responses.create(model="solo", input="one too many")
    assert exc.value.body["code"] == "no_deployments_available"


def test_cost_based_routing_is_refused_at_startup(tmp_path: Path) -> None:
    from tests.e2e.proxy_process import run_cli

    config = {
        "model_list": [{"model_name": "demo", "litellm_params": {"model": "mock/demo"}}],
        "router_settings": {"routing_strategy": "cost-based-routing"},
    }
    result = run_cli("--config", str(write_config(config, tmp_path)))
    assert result.returncode == 2
    assert "router_settings.routing_strategy" in result.stderr and "no model price table" in result.stderr
