"""What a call cost, from its token usage, with genai-prices' maintained price table.

A deployment's own prices (`input_cost_per_token`, `output_cost_per_token`,
`cache_read_input_token_cost` in `litellm_params` or `model_info`, as LiteLLM names them)
win over the table. Rates are resolved once per deployment and kept as floats, so pricing a
call is a few multiplications; a model whose table entry has tiered prices goes through
genai-prices for every call. A model with no known price is logged once and costs 0.

Token classes are priced separately: cached input at the cache-read rate, cache writes at the
cache-write rate, the rest of the input at the input rate; reasoning tokens are output tokens
(every provider bills them at the output rate) and are included in `output_tokens`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from genai_prices.types import ModelPrice

from ..providers.base import Call
from ..providers.registry import Deployment
from .stage import Outcome

log = logging.getLogger("llmrelay.gateway")
Json = dict[str, Any]

# llmrelay's provider names -> genai-prices' provider ids
PROVIDER_IDS = {
    "openai": "openai", "azure": "azure", "xai": "x-ai", "openrouter": "openrouter", "anthropic": "anthropic",
    "gemini": "google", "groq": "groq", "mistral": "mistral", "deepseek": "deepseek", "together_ai": "together",
    "fireworks_ai": "fireworks", "bedrock": "aws", "vertex_ai": "google",
}  # fmt: skip
OVERRIDES = ("input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost")


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per token. `exact` (genai-prices itself) prices what the flat rates cannot: a call at
    or past `flat_below` input tokens on a tiered model, or a model whose price changes over time."""

    input: float = 0.0
    output: float = 0.0
    cache_read: float = 0.0
    cache_write: float = 0.0
    exact: Callable[[Any], Any] | None = None
    flat_below: float = math.inf
    known: bool = True

    def cost(self, usage: Json | None) -> float:
        if not usage:
            return 0.0
        inp, cached, written, out = tokens = _tokens(usage)
        if self.exact is not None and inp >= self.flat_below:
            return float(self.exact(_genai_usage(*tokens)))
        plain = max(inp - cached - written, 0)
        return plain * self.input + cached * self.cache_read + written * self.cache_write + out * self.output


UNKNOWN = Rates(known=False)


def _tokens(usage: Json) -> tuple[int, int, int, int]:
    """(input, cached input, cache writes, output) from a Responses usage object; input
    includes the cached and written tokens, as OpenAI reports it."""
    details = usage.get("input_tokens_details") or {}
    return (
        int(usage.get("input_tokens") or 0),
        int(details.get("cached_tokens") or 0),
        int(details.get("cache_write_tokens") or details.get("cache_creation_tokens") or 0),
        int(usage.get("output_tokens") or 0),
    )


def _genai_usage(inp: int, cached: int, written: int, out: int) -> Any:
    from genai_prices import Usage

    return Usage(input_tokens=inp, cache_read_tokens=cached, cache_write_tokens=written, output_tokens=out)


def _flat(value: Any) -> float | None:
    """USD per token from a per-million price; a tiered price gives its base (below the tiers)."""
    if value is None:
        return None
    return float(getattr(value, "base", value)) / 1_000_000


def table_rates(provider: str, model: str) -> Rates:
    """The genai-prices rates for a model, or UNKNOWN."""
    from genai_prices import calc_price, data_snapshot

    provider_id = PROVIDER_IDS.get(provider)
    try:
        found = data_snapshot.get_snapshot().find_provider_model(model, None, provider_id, None)[1]
    except LookupError:
        return UNKNOWN
    if not isinstance(found.prices, ModelPrice):  # prices that change with the time of day

        def now(usage: Any) -> Any:
            return calc_price(usage, model, provider_id=provider_id).total_price

        return Rates(exact=now, flat_below=0)
    price = found.prices
    fields = (price.input_mtok, price.output_mtok, price.cache_read_mtok, price.cache_write_mtok)
    starts = [t.start for f in fields for t in getattr(f, "tiers", ())]
    inp, out, read, write = (_flat(f) for f in fields)
    inp = inp or 0.0
    return Rates(
        input=inp,
        output=out or 0.0,
        cache_read=inp if read is None else read,
        cache_write=inp if write is None else write,
        exact=(lambda usage: price.calc_price(usage)["total_price"]) if starts else None,
        flat_below=min(starts, default=math.inf),
    )


def deployment_rates(dep: Deployment) -> Rates:
    """The table's rates for the deployment's model, with the deployment's own prices over them."""
    own = {k: float(dep.extra[k]) for k in OVERRIDES if dep.extra.get(k) is not None}
    if "input_cost_per_token" in own and "output_cost_per_token" in own:
        base = Rates()
    else:
        base = table_rates(dep.provider.name, dep.model)
        if not base.known and own:
            base = Rates()
    if not own:
        return base
    inp = own.get("input_cost_per_token", base.input)
    return Rates(
        input=inp,
        output=own.get("output_cost_per_token", base.output),
        cache_read=own.get("cache_read_input_token_cost", base.cache_read if base.known else inp),
        cache_write=inp if "input_cost_per_token" in own else base.cache_write,
    )


class Pricing:
    """The stage that prices every finished call: `call.meta["cost"]` and `outcome.cost`."""

    def __init__(self) -> None:
        self._rates: dict[str, Rates] = {}

    def rates(self, dep: Deployment) -> Rates:
        rates = self._rates.get(dep.id)
        if rates is None:
            rates = self._rates[dep.id] = deployment_rates(dep)
            if not rates.known and dep.provider.name != "mock":
                log.warning("no price known for %s/%s: its calls are charged 0", dep.provider.name, dep.model)
        return rates

    async def before(self, call: Call) -> None:
        return None

    def after(self, call: Call, outcome: Outcome) -> None:
        outcome.cost = self.rates(call.deployment).cost(outcome.usage)
        call.meta["cost"] = outcome.cost
