"""Retries, cooldowns and fallbacks through the proxy, driven by the official openai SDK
against fake upstreams scripted to fail (429 with Retry-After, 500, 529, cut connections,
context-window and content-policy refusals)."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI

from tests.e2e.proxy_process import ProxyProcess, start_proxy, write_config
from tests.fakes.process import FakeServer, free_port

HEADER = "x-llmrelay-deployment"


def deployment(name: str, model: str, fake: FakeServer | str, dep_id: str, **params: Any) -> dict[str, Any]:
    base = fake if isinstance(fake, str) else fake.url
    litellm_params = {"model": model, "api_key": "test-key", "api_base": base, **params}
    return {"model_name": name, "litellm_params": litellm_params, "model_info": {"id": dep_id}}


def client(proxy: ProxyProcess) -> OpenAI:
    return OpenAI(base_url=proxy.url, api_key="k", max_retries=0)


def served_by(proxy: ProxyProcess, **params: Any) -> tuple[str, Any]:
    raw = client(proxy).responses.with_raw_response.create(**params)
    return raw.headers[HEADER], raw.parse()


@pytest.fixture
def fakes(openai_fake: FakeServer, openai_fake_b: FakeServer, anthropic_fake: FakeServer) -> tuple[FakeServer, ...]:
    for fake in (openai_fake, openai_fake_b, anthropic_fake):
        fake.reset()
    return openai_fake, openai_fake_b, anthropic_fake


def two_tier(a: FakeServer | str, b: FakeServer, **router_settings: Any) -> dict[str, Any]:
    """Group "gpt": deployment "a" first (order 1), "b" when "a" fails or cools down."""
    return {
        "model_list": [
            deployment("gpt", "openai/gpt-4o", a, "a", order=1),
            deployment("gpt", "openai/gpt-4o", b, "b", order=2),
        ],
        "router_settings": {"num_retries": 1, **router_settings},
    }


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 429, "headers": {"retry-after": "30"}},
        {"status": 500},
        {"status": 529, "body": {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}},
        {"abort": True},
    ],
    ids=["429", "500", "529", "cut"],
)
def test_a_failed_call_is_retried_at_once_on_another_deployment_of_the_group(
    fakes: tuple[FakeServer, ...], failure: dict[str, Any], tmp_path: Path
) -> None:
    a, b, _ = fakes
    a.enqueue(failure)
    with start_proxy("--config", str(write_config(two_tier(a, b), tmp_path))) as proxy:
        started = time.monotonic()
        dep, r = served_by(proxy, model="gpt", input="hi")
        assert time.monotonic() - started < 10  # another deployment: no wait for Retry-After
        assert dep == "b" and r.output_text == "Echo (turns=1): hi"
        assert len(a.requests()) == 1 and len(b.requests()) == 1
        # the stored record names "b": the next turn continues on b's own state
        dep, again = served_by(proxy, model="gpt", input="more", previous_response_id=r.id)
        assert dep == "b" and again.output_text == "Echo (turns=2): more"
        assert b.requests()[-1]["body"]["previous_response_id"]


def test_a_refused_connection_moves_on_and_a_stream_says_which_deployment_serves_it(
    fakes: tuple[FakeServer, ...], tmp_path: Path
) -> None:
    _, b, _ = fakes
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    with start_proxy("--config", str(write_config(two_tier(dead, b), tmp_path))) as proxy:
        with client(proxy).responses.with_streaming_response.create(model="gpt", input="s", stream=True) as raw:
            assert raw.headers[HEADER] == "b"
            events = [json.loads(line[6:]) for line in raw.iter_lines() if line.startswith("data: ")]
        assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.completed"
        assert events[-1]["response"]["output"][0]["content"][0]["text"] == "Echo (turns=1): s"


def test_a_lone_deployment_is_retried_after_the_wait_its_retry_after_asks_for(
    fakes: tuple[FakeServer, ...], tmp_path: Path
) -> None:
    a, _, _ = fakes
    a.enqueue({"status": 429, "headers": {"retry-after": "0.6"}})
    config = {"model_list": [deployment("gpt", "openai/gpt-4o", a, "a")], "router_settings": {"num_retries": 1}}
    with start_proxy("--config", str(write_config(config, tmp_path))) as proxy:
        dep, r = served_by(proxy, model="gpt", input="wait")
    assert dep == "a" and r.output_text == "Echo (turns=1): wait"
    first, second = a.requests()
    assert second["time"] - first["time"] >= 0.6


def test_retry_policy_sets_the_retries_per_error_class(fakes: tuple[FakeServer, ...], tmp_path: Path) -> None:
    a, b, _ = fakes
    a.enqueue([{"status": 429}, {"status": 500}])
    config = two_tier(a, b, retry_policy={"RateLimitErrorRetries": 0, "InternalServerErrorRetries": 1})
    with start_proxy("--config", str(write_config(config, tmp_path))) as proxy:
        with pytest.raises(openai.RateLimitError):
            client(proxy).responses.create(model="gpt", input="no retry")
        assert served_by(proxy, model="gpt", input="retried")[0] == "b"
    assert len(a.requests()) == 2 and len(b.requests()) == 1


def test_a_deployment_failing_past_allowed_fails_cools_down(fakes: tuple[FakeServer, ...], tmp_path: Path) -> None:
    a, b, _ = fakes
    a.enqueue([{"status": 500}, {"status": 500}])
    config = two_tier(a, b, allowed_fails=1, cooldown_time=60)
    with start_proxy("--config", str(write_config(config, tmp_path))) as proxy:
        assert [served_by(proxy, model="gpt", input=str(i))[0] for i in range(4)] == ["b"] * 4
        assert len(a.requests()) == 2  # the third and fourth never tried "a"
        ready = json.loads(urllib.request.urlopen(proxy.root + "/health/readiness").read())
        assert 0 < ready["cooldowns"]["a"] <= 60


def test_a_group_cooling_down_as_a_whole_is_a_429_with_retry_after(
    fakes: tuple[FakeServer, ...], tmp_path: Path
) -> None:
    a, _, _ = fakes
    a.enqueue({"status": 500})
    config = {
        "model_list": [deployment("gpt", "openai/gpt-4o", a, "a")],
        "router_settings": {"allowed_fails": 0, "cooldown_time": 60},
    }
    with start_proxy("--config", str(write_config(config, tmp_path))) as proxy:
        with pytest.raises(openai.InternalServerError):
            client(proxy).responses.create(model="gpt", input="fails")
        with pytest.raises(openai.RateLimitError) as exc:
            client(proxy).responses.create(model="gpt", input="cooling")
    assert exc.value.body["code"] == "no_deployments_available"
    assert 0 < int(exc.value.response.headers["retry-after"]) <= 60
    assert len(a.requests()) == 1


def fallback_config(a: FakeServer, b: FakeServer, claude: FakeServer, **router_settings: Any) -> dict[str, Any]:
    return {
        "model_list": [
            deployment("primary", "openai/gpt-4o", a, "a"),
            deployment("big", "openai/gpt-4.1", b, "b"),
            deployment("claude", "anthropic/claude-sonnet-4-5", claude, "c"),
        ],
        "router_settings": router_settings,
    }


def test_fallbacks_are_tried_in_order_across_providers(fakes: tuple[FakeServer, ...], tmp_path: Path) -> None:
    a, b, claude = fakes
    a.enqueue({"status": 503})
    b.enqueue({"status": 500})
    config = fallback_config(a, b, claude, fallbacks=[{"primary": ["big", "claude"]}])
    with start_proxy("--config", str(write_config(config, tmp_path))) as proxy:
        dep, r = served_by(proxy, model="primary", input="anyone?")
        assert dep == "c" and r.output_text == "Echo (turns=1): anyone?"
        assert r.model == "claude-sonnet-4-5"
        # the stored record names the deployment that answered: the next turn replays on it
        dep, again = served_by(proxy, model="claude", input="and you?", previous_response_id=r.id)
        assert dep == "c" and again.output_text == "Echo (turns=2): and you?"
    assert len(a.requests()) == 1 and len(b.requests()) == 1 and len(claude.requests()) == 2


def test_default_fallbacks_serve_every_group_without_its_own(fakes: tuple[FakeServer, ...], tmp_path: Path) -> None:
    a, b, claude = fakes
    a.enqueue({"abort": True})
    config = fallback_config(a, b, claude, default_fallbacks=["claude"])
    with start_proxy("--config", str(write_config(config, tmp_path))) as proxy:
        assert served_by(proxy, model="primary", input="x")[0] == "c"


@pytest.mark.parametrize(
    ("code", "key"),
    [("context_length_exceeded", "context_window_fallbacks"), ("content_policy_violation", "content_policy_fallbacks")],
)
def test_context_window_and_content_policy_errors_take_their_own_fallbacks(
    fakes: tuple[FakeServer, ...], code: str, key: str, tmp_path: Path
) -> None:
    a, b, claude = fakes
    error = {"message": "refused", "type": "invalid_request_error", "param": "input", "code": code}
    a.enqueue({"status": 400, "body": {"error": error}})
    config = fallback_config(a, b, claude, fallbacks=[{"primary": ["claude"]}], **{key: [{"primary": ["big"]}]})
    with start_proxy("--config", str(write_config(config, tmp_path))) as proxy:
        assert served_by(proxy, model="primary", input="long")[0] == "b"
    assert claude.requests() == []


def test_a_bad_request_is_not_retried_nor_sent_to_a_fallback(fakes: tuple[FakeServer, ...], tmp_path: Path) -> None:
    a, b, claude = fakes
    error = {"message": "Invalid value for 'top_p'.", "type": "invalid_request_error", "param": "top_p", "code": None}
    a.enqueue({"status": 400, "body": {"error": error}})
    config = fallback_config(a, b, claude, num_retries=3, fallbacks=[{"primary": ["big"]}])
    with (
        start_proxy("--config", str(write_config(config, tmp_path))) as proxy,
        pytest.raises(openai.BadRequestError, match="top_p"),
    ):
        client(proxy).responses.create(model="primary", input="bad")
    assert len(a.requests()) == 1 and b.requests() == []


def test_a_continuation_whose_deployment_is_down_is_replayed_elsewhere(
    fakes: tuple[FakeServer, ...], tmp_path: Path
) -> None:
    a, b, _ = fakes
    config = {
        "model_list": [
            deployment("gpt", "openai/gpt-4o", a, "a", weight=1000),
            deployment("gpt", "openai/gpt-4o", b, "b", weight=0.001),
        ],
        "router_settings": {"num_retries": 1},
    }
    with start_proxy("--config", str(write_config(config, tmp_path))) as proxy:
        first = client(proxy).responses.create(model="gpt", input="one")
        holder = "a" if a.requests() else "b"
        other = b if holder == "a" else a
        (a if holder == "a" else b).enqueue({"status": 500})
        dep, r = served_by(proxy, model="gpt", input="two", previous_response_id=first.id)
    assert dep != holder and r.output_text == "Echo (turns=2): two"
    replayed = other.requests()[-1]["body"]
    assert "previous_response_id" not in replayed and replayed["input"][0]["content"] in ("one", [
        {"type": "input_text", "text": "one"}])  # fmt: skip


# -- shared through Redis --------------------------------------------------------------------


def readiness(proxy: ProxyProcess) -> dict[str, Any]:
    return json.loads(urllib.request.urlopen(proxy.root + "/health/readiness").read())


def test_a_cooldown_holds_for_every_instance_sharing_redis(fakes: tuple[FakeServer, ...], tmp_path: Path) -> None:
    a, b, _ = fakes
    run = uuid.uuid4().hex[:8]  # other runs share the Redis server: ids of our own
    config = two_tier(a, b, allowed_fails=1, cooldown_time=60, redis_host="127.0.0.1", redis_port=6379)
    for entry, name in zip(config["model_list"], ("a", "b"), strict=True):
        entry["model_info"]["id"] = f"{name}-{run}"
    path = str(write_config(config, tmp_path))
    a.enqueue([{"status": 500}, {"status": 500}])
    with start_proxy("--config", path) as first, start_proxy("--config", path) as second:
        assert [served_by(first, model="gpt", input="x")[0] for _ in range(2)] == [f"b-{run}"] * 2
        deadline = time.monotonic() + 10
        while f"a-{run}" not in readiness(second).get("cooldowns", {}):  # published over pub/sub
            assert time.monotonic() < deadline, readiness(second)
            time.sleep(0.02)
        assert served_by(second, model="gpt", input="y")[0] == f"b-{run}"
        with start_proxy("--config", path) as late:  # reads the running cooldowns at startup
            assert f"a-{run}" in readiness(late)["cooldowns"]
            assert served_by(late, model="gpt", input="z")[0] == f"b-{run}"
    assert len(a.requests()) == 2


def test_failures_are_counted_across_instances_sharing_redis(fakes: tuple[FakeServer, ...], tmp_path: Path) -> None:
    a, b, _ = fakes
    run = uuid.uuid4().hex[:8]
    config = two_tier(a, b, allowed_fails=1, cooldown_time=60, redis_url="redis://127.0.0.1:6379/0")
    for entry, name in zip(config["model_list"], ("a", "b"), strict=True):
        entry["model_info"]["id"] = f"{name}-{run}"
    path = str(write_config(config, tmp_path))
    a.enqueue([{"status": 500}, {"status": 500}])
    with start_proxy("--config", path) as first, start_proxy("--config", path) as second:
        served_by(first, model="gpt", input="1")  # one failure here...
        served_by(second, model="gpt", input="2")  # ...and one there: past allowed_fails together
        assert f"a-{run}" in readiness(second)["cooldowns"]
        assert served_by(second, model="gpt", input="3")[0] == f"b-{run}"
    assert len(a.requests()) == 2


def test_an_anthropic_context_overflow_takes_the_context_window_fallback(
    fakes: tuple[FakeServer, ...], tmp_path: Path
) -> None:
    a, b, claude = fakes
    message = "prompt is too long: 250000 tokens > 200000 maximum"
    too_long = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    claude.enqueue({"status": 400, "body": too_long})
    config = fallback_config(
        a, b, claude, context_window_fallbacks=[{"claude": ["big"]}], fallbacks=[{"claude": ["primary"]}]
    )
    with start_proxy("--config", str(write_config(config, tmp_path))) as proxy:
        dep, r = served_by(proxy, model="claude", input="a very long prompt")
    assert dep == "b" and r.output_text == "Echo (turns=1): a very long prompt" and r.model == "gpt-4.1"
    assert len(claude.requests()) == 1 and a.requests() == []
