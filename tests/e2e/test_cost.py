"""The cost of every request: `x-llmrelay-response-cost`, priced with genai-prices."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from genai_prices import Usage, calc_price
from openai import OpenAI

from tests.e2e.proxy_process import start_proxy, write_config
from tests.fakes.process import FakeServer

COST = "x-llmrelay-response-cost"


def _expected(usage: object, model: str, provider_id: str) -> float:
    u = usage.model_dump()  # type: ignore[attr-defined]
    details = u.get("input_tokens_details") or {}
    genai = Usage(input_tokens=u["input_tokens"], cache_read_tokens=details.get("cached_tokens") or 0,
                  output_tokens=u["output_tokens"])  # fmt: skip
    return float(calc_price(genai, model, provider_id=provider_id).total_price)


def test_each_provider_is_priced_as_genai_prices_prices_it(
    openai_fake: FakeServer, anthropic_fake: FakeServer, gemini_fake: FakeServer, tmp_path: Path
) -> None:
    models = [  # (name, llmrelay model, fake, genai-prices provider)
        ("gpt", "openai/gpt-4o", openai_fake, "openai"),
        ("claude", "anthropic/claude-sonnet-4-5", anthropic_fake, "anthropic"),
        ("gemini", "gemini/gemini-2.5-flash", gemini_fake, "google"),
    ]
    config = {"model_list": [{"model_name": n, "litellm_params": {"model": m, "api_key": "k", "api_base": f.url}}
                             for n, m, f, _ in models]}  # fmt: skip
    with start_proxy("--config", str(write_config(config, tmp_path))) as proxy:
        client = OpenAI(base_url=proxy.url, api_key="k", max_retries=0)
        for name, model, _, provider_id in models:
            # two turns, so the second has cached input where the fake reports it
            first = client.responses.create(model=name, input="hello there, how are you today")
            raw = client.responses.with_raw_response.create(model=name, input="again", previous_response_id=first.id)
            response = raw.parse()
            assert response.usage is not None and response.usage.output_tokens > 0
            expected = _expected(response.usage, model.partition("/")[2], provider_id)
            assert expected > 0
            assert float(raw.headers[COST]) == pytest.approx(expected, rel=1e-9), name


def test_a_deployment_price_overrides_the_table_and_an_unknown_model_costs_zero(
    openai_fake: FakeServer, tmp_path: Path
) -> None:
    config = {"model_list": [
        {"model_name": "own", "litellm_params": {"model": "openai/gpt-4o", "api_key": "k", "api_base": openai_fake.url,
                                                 "input_cost_per_token": 0.5, "output_cost_per_token": 2}},
        {"model_name": "info", "litellm_params": {"model": "openai/gpt-4o", "api_key": "k2",
                                                  "api_base": openai_fake.url},
         "model_info": {"input_cost_per_token": 0.25, "output_cost_per_token": 1}},
        {"model_name": "nobody", "litellm_params": {"model": "openai/no-such-model-x", "api_key": "k",
                                                    "api_base": openai_fake.url}},
    ]}  # fmt: skip
    with start_proxy("--config", str(write_config(config, tmp_path))) as proxy:
        client = OpenAI(base_url=proxy.url, api_key="k", max_retries=0)
        for name, (inp, out) in {"own": (0.5, 2), "info": (0.25, 1)}.items():
            raw = client.responses.with_raw_response.create(model=name, input="one two three")
            usage = raw.parse().usage
            assert usage is not None
            assert float(raw.headers[COST]) == pytest.approx(usage.input_tokens * inp + usage.output_tokens * out)
        for _ in range(2):
            raw = client.responses.with_raw_response.create(model="nobody", input="hi")
            assert raw.parse().status == "completed" and float(raw.headers[COST]) == 0
        assert proxy.output().count("no price known for openai/no-such-model-x") == 1
        with urllib.request.urlopen(proxy.root + "/model/info", timeout=10) as r:
            info = {m["model_name"]: m["model_info"] for m in json.loads(r.read())["data"]}
        assert info["own"]["input_cost_per_token"] == 0.5 and info["own"]["output_cost_per_token"] == 2
        assert info["info"]["input_cost_per_token"] == 0.25
        assert info["nobody"]["price_known"] is False and info["own"]["litellm_provider"] == "openai"
