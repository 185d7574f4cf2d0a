"""What automatic prompt caching saves on a Codex-style conversation with Claude.

Runs the 10-turn conversation of tests/e2e/codex_conversation.py (long instructions and a tool;
each turn a task, a tool call, its output and an answer: 20 requests) through the llmrelay SDK
against the fake Anthropic upstream, which accounts cache writes and reads as Anthropic does,
once with prompt caching on and once off; prints the input tokens, the cached (read) and written
tokens, and the cost at genai-prices' rates for a Claude model.

    python bench/prompt_cache.py [--model claude-sonnet-4-5] [--turns 10] [--chain]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's llmrelay and tests

import llmrelay
from llmrelay.gateway.prices import table_rates
from tests.e2e.codex_conversation import converse
from tests.fakes.process import start_fake


def run(fake_url: str, model: str, turns: int, chain: bool, caching: bool) -> dict[str, float]:
    relay = llmrelay.Relay(store="memory")
    options = {"api_base": fake_url, "api_key": "bench", "prompt_caching": caching, "relay": relay}

    def create(**params: Any) -> Any:
        return llmrelay.responses(**params, **options)

    rates = table_rates("anthropic", model)
    total = {"input": 0.0, "cached": 0.0, "written": 0.0, "output": 0.0, "cost": 0.0}
    for response in converse(create, f"anthropic/{model}", turns=turns, chain=chain):
        usage = response.usage.model_dump()
        details = usage["input_tokens_details"]
        total["input"] += usage["input_tokens"]
        total["cached"] += details["cached_tokens"]
        total["written"] += details.get("cache_write_tokens") or 0
        total["output"] += usage["output_tokens"]
        total["cost"] += rates.cost(usage)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="claude-sonnet-4-5", help="the Claude model whose prices apply")
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--chain", action="store_true", help="previous_response_id instead of the full history")
    args = parser.parse_args()
    os.environ.setdefault("LLMRELAY_STORE", "memory")
    with start_fake("tests.fakes.anthropic_upstream", timeout=60) as fake:
        on = run(fake.url, args.model, args.turns, args.chain, caching=True)
        off = run(fake.url, args.model, args.turns, args.chain, caching=False)
    mode = "previous_response_id chain" if args.chain else "history resent each turn"
    print(f"{args.turns} turns ({2 * args.turns} requests), {mode}, priced as anthropic/{args.model}")
    print(f"{'prompt caching':<16}{'input':>10}{'cached':>10}{'written':>10}{'output':>8}{'cost USD':>12}")
    for name, t in (("on", on), ("off", off)):
        print(f"{name:<16}{t['input']:>10.0f}{t['cached']:>10.0f}{t['written']:>10.0f}{t['output']:>8.0f}"
              f"{t['cost']:>12.5f}")  # fmt: skip
    saving = 1 - on["cost"] / off["cost"] if off["cost"] else 0.0
    print(f"cached share of input: {on['cached'] / on['input']:.1%}; cost saving: {saving:.1%} "
          f"(on costs {on['cost'] / off['cost']:.3f}x off)")  # fmt: skip


if __name__ == "__main__":
    main()
