"""The router's pure pieces: error classes, retry counts, cooldown counting, failover config."""

from __future__ import annotations

import pytest

from llmrelay import errors
from llmrelay.config import ConfigError, parse_config
from llmrelay.router import Router
from llmrelay.router.cooldown import Cooldowns
from llmrelay.router.policy import RetryPolicy, classify, fail_threshold


@pytest.mark.parametrize(
    ("err", "kind"),
    [
        (errors.status_error(429, "slow down"), "RateLimitError"),
        (errors.status_error(529, "overloaded"), "InternalServerError"),
        (errors.status_error(503, "down"), "InternalServerError"),
        (errors.status_error(408, "late"), "TimeoutError"),
        (errors.timeout_error("late"), "TimeoutError"),
        (errors.connection_error("refused"), "InternalServerError"),
        (errors.status_error(401, "key"), "AuthenticationError"),
        (errors.bad_request("too long", code="context_length_exceeded"), "ContextWindowExceededError"),
        (errors.bad_request("no", code="content_policy_violation"), "ContentPolicyViolationError"),
        (errors.bad_request("bad top_p", param="top_p"), "BadRequestError"),
        (errors.not_found("no model"), "BadRequestError"),
    ],
)
def test_errors_fall_into_litellm_classes(err: Exception, kind: str) -> None:
    assert classify(err) == kind


def test_retries_default_to_num_retries_for_transient_errors_only() -> None:
    policy = RetryPolicy(per_class={"RateLimitErrorRetries": 5, "BadRequestErrorRetries": 1})
    assert policy.retries("RateLimitError", 2) == 5
    assert policy.retries("InternalServerError", 2) == 2
    assert policy.retries("BadRequestError", 2) == 1
    assert policy.retries("AuthenticationError", 2) == 0


def test_the_wait_honours_retry_after_and_the_floor() -> None:
    err = errors.status_error(429, "slow", headers={"retry-after": "7"})
    assert RetryPolicy().wait(0, err) == 7
    assert RetryPolicy(retry_after=9).wait(0, err) == 9


def test_bad_requests_never_cool_a_deployment_down() -> None:
    assert fail_threshold("BadRequestError", 3, {}) is None
    assert fail_threshold("RateLimitError", 3, {}) == 3
    assert fail_threshold("RateLimitError", 3, {"RateLimitErrorAllowedFails": 10}) == 10


async def test_a_cooldown_starts_past_allowed_fails_and_ends_after_cooldown_time() -> None:
    cooldowns = Cooldowns(allowed_fails=1, cooldown_time=60)
    assert not await cooldowns.failed("d", "InternalServerError")
    assert not cooldowns.cooling("d")
    assert await cooldowns.failed("d", "InternalServerError")
    assert cooldowns.cooling("d") and 59 < cooldowns.remaining()["d"] <= 60
    cooldowns.until["d"] = 0.0  # its time is up
    assert not cooldowns.cooling("d") and cooldowns.until == {}
    assert not await Cooldowns(allowed_fails=0, enabled=False).failed("d", "InternalServerError")


def config(**router_settings: object) -> dict:
    return {
        "model_list": [
            {"model_name": "gpt", "litellm_params": {"model": "openai/gpt-4o", "api_key": "k", "order": 2}},
            {"model_name": "gpt", "litellm_params": {"model": "openai/gpt-4.1", "api_key": "k", "order": 1}},
            {"model_name": "claude", "litellm_params": {"model": "anthropic/claude-x", "api_key": "k"}},
        ],
        "router_settings": router_settings,
    }


def test_the_lowest_order_is_picked_while_it_is_healthy() -> None:
    c = parse_config(config(fallbacks=[{"gpt": ["claude"]}]))
    router = Router(c.deployments(), settings=c.routing())
    assert {router.pick("gpt").model for _ in range(20)} == {"gpt-4.1"}
    low, high = sorted(router.groups["gpt"], key=lambda d: d.extra["order"])
    router.cooldowns.mark(low.id, 2e9)
    assert router.pick("gpt").model == "gpt-4o"
    router.cooldowns.mark(high.id, 2e9)
    assert router.pick("gpt").model == "claude-x"  # the whole group is cooling down: its fallback


def test_weights_shape_the_shuffle() -> None:
    raw = config()
    for entry, weight in zip(raw["model_list"][:2], (1000, 0.001), strict=True):
        del entry["litellm_params"]["order"]
        entry["litellm_params"]["rpm"] = weight if weight > 1 else 1
        entry["litellm_params"]["weight"] = weight
    c = parse_config(raw)
    router = Router(c.deployments(), settings=c.routing())
    picks = [router.pick("gpt").model for _ in range(200)]
    assert picks.count("gpt-4o") > 190


def test_settings_come_from_router_settings_over_litellm_settings() -> None:
    raw = config(allowed_fails=2, fallbacks=[{"gpt": "claude"}])
    raw["litellm_settings"] = {"allowed_fails": 9, "cooldown_time": 30, "default_fallbacks": ["claude"]}
    s = parse_config(raw).routing()
    assert (s.allowed_fails, s.cooldown_time) == (2, 30)
    assert s.fallbacks == {"gpt": ("claude",)} and s.default_fallbacks == ("claude",)
    assert s.fallbacks_for("nope") == ("claude",) and s.fallbacks_for("gpt", kind="context_window") == ()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"fallbacks": [{"gpt": ["gemini"]}]}, r"^router_settings.fallbacks\[0\].gpt: fallback 'gemini' is not"),
        ({"default_fallbacks": ["x"]}, r"^router_settings.default_fallbacks: fallback 'x' is not a model_name"),
        ({"retry_policy": {"RateLimitRetries": 1}}, r"^router_settings.retry_policy: .*unknown key 'RateLimitRetries'"),
        ({"allowed_fails_policy": {"RateLimitErrorAllowedFails": -1}}, r"must be 0 or more"),
    ],
)
def test_bad_failover_settings_stop_startup_with_their_path(settings: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(config(**settings))
