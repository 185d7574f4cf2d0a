"""The timeout policy: the transport's defaults (nothing waits forever) and the config
fields that change them (LiteLLM's names)."""

from __future__ import annotations

from llmrelay.config import parse_config
from llmrelay.transport import CONNECT_TIMEOUT, DEFAULT_STREAM_TIMEOUT, DEFAULT_TIMEOUT, Http


def test_defaults_bound_connecting_and_every_read() -> None:
    http = Http()
    # (each silence of the upstream, connecting): no bound on a whole reply or stream
    assert http._timeout(None, stream=False) == (DEFAULT_TIMEOUT, CONNECT_TIMEOUT)
    assert http._timeout(None, stream=True) == (DEFAULT_STREAM_TIMEOUT, CONNECT_TIMEOUT)
    assert CONNECT_TIMEOUT == 10 and DEFAULT_TIMEOUT == 600


def test_a_short_timeout_bounds_connecting_too() -> None:
    assert Http()._timeout(2.0, stream=True) == (2.0, 2.0)


def test_litellm_timeout_fields_reach_the_deployments_and_the_relay() -> None:
    entry = {"model_name": "m", "litellm_params": {"model": "openai/gpt-4o", "api_key": "k", "timeout": 30,
                                                   "stream_timeout": 5}}  # fmt: skip
    config = parse_config({"model_list": [entry], "router_settings": {"stream_timeout": 7},
                           "litellm_settings": {"request_timeout": 90}})  # fmt: skip
    (dep,) = config.deployments()
    assert (dep.timeout, dep.stream_timeout) == (30, 5)
    assert (config.timeout, config.stream_timeout) == (90, 7)
    config = parse_config({"model_list": [entry], "litellm_settings": {"timeout": 40, "stream_timeout": 8}})
    assert (config.timeout, config.stream_timeout) == (40, 8)
