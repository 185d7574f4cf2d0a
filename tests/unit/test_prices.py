"""Pricing a usage: llmrelay's flat-rate fast path agrees with genai-prices itself."""

from __future__ import annotations

import pytest
from genai_prices import Usage, calc_price

from llmrelay.gateway.prices import UNKNOWN, deployment_rates, table_rates
from llmrelay.providers.registry import make_deployment

CASES = [  # (llmrelay provider, model, genai-prices provider): flat, tiered and time-of-day prices
    ("openai", "gpt-4o", "openai"),
    ("openai", "o3", "openai"),
    ("anthropic", "claude-sonnet-4-5", "anthropic"),
    ("gemini", "gemini-2.5-pro", "google"),
    ("gemini", "gemini-2.5-flash", "google"),
    ("xai", "grok-4", "x-ai"),
    ("groq", "llama-3.3-70b-versatile", "groq"),
    ("mistral", "mistral-large-latest", "mistral"),
    ("deepseek", "deepseek-chat", "deepseek"),
]


@pytest.mark.parametrize(("provider", "model", "provider_id"), CASES)
@pytest.mark.parametrize("input_tokens", [1_000, 199_999, 250_000])
def test_cost_matches_genai_prices(provider: str, model: str, provider_id: str, input_tokens: int) -> None:
    usage = {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 300},
        "output_tokens": 700,
        "output_tokens_details": {"reasoning_tokens": 500},  # part of output_tokens, billed as output
    }
    expected = calc_price(Usage(input_tokens=input_tokens, cache_read_tokens=300, output_tokens=700), model,
                          provider_id=provider_id).total_price  # fmt: skip
    assert table_rates(provider, model).cost(usage) == pytest.approx(float(expected), rel=1e-12)


def test_cached_input_is_cheaper_than_plain_input() -> None:
    rates = table_rates("openai", "gpt-4o")
    plain = rates.cost({"input_tokens": 1000, "output_tokens": 0})
    cached = rates.cost({"input_tokens": 1000, "input_tokens_details": {"cached_tokens": 1000}, "output_tokens": 0})
    assert 0 < cached < plain


def test_unknown_models_and_missing_usage_cost_zero() -> None:
    assert table_rates("openai", "no-such-model-x") is UNKNOWN
    assert table_rates("ollama", "llama3") is UNKNOWN or table_rates("ollama", "llama3").known
    assert UNKNOWN.cost({"input_tokens": 10, "output_tokens": 10}) == 0
    assert table_rates("openai", "gpt-4o").cost(None) == 0


def test_deployment_prices_override_the_table() -> None:
    dep = make_deployment("openai/gpt-4o", api_key="k")
    dep.extra.update(input_cost_per_token=0.5, output_cost_per_token=2.0)
    assert deployment_rates(dep).cost({"input_tokens": 10, "output_tokens": 3}) == 11.0
    only_output = make_deployment("openai/gpt-4o", api_key="k2")
    only_output.extra["output_cost_per_token"] = 1.0
    # the table's input price stays; the output price is the deployment's
    assert deployment_rates(only_output).cost({"input_tokens": 1_000_000, "output_tokens": 1}) == pytest.approx(3.5)
    unknown = make_deployment("openai/no-such-model-x", api_key="k")
    unknown.extra["input_cost_per_token"] = 0.1
    assert deployment_rates(unknown).cost({"input_tokens": 10, "output_tokens": 10}) == pytest.approx(1.0)
