"""CPU the gateway stages add to one call with a virtual key, measured in process.

A key with a budget, a budget window, rpm/tpm/parallel limits and a model list, in a team with
its own budget: the key lookup (a cache hit), admission, model access, the budget check, the
limit check and release, pricing and the spend log row, as the proxy runs them per request.
Prints microseconds of CPU per call, the spend log's batched writes included (`--store` a
Postgres URL for the real ones); `--redis URL` also measures the Redis-shared counters.

    PYTHONPATH=. python bench/gateway_cpu.py --store postgresql://... --redis redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import asyncio
import time

from llmrelay.gateway.access import ModelAccess, admit
from llmrelay.gateway.admin import Admin
from llmrelay.gateway.budgets import Budgets
from llmrelay.gateway.directory import Directory, digest
from llmrelay.gateway.limits import Counters, Limits, LocalCounters, RedisCounters
from llmrelay.gateway.prices import Pricing
from llmrelay.gateway.spend import SpendLog
from llmrelay.gateway.stage import outcome_of, run_after, run_before
from llmrelay.providers.base import Call
from llmrelay.providers.registry import make_deployment
from llmrelay.store import open_store

USAGE = {"input_tokens": 120, "input_tokens_details": {"cached_tokens": 64}, "output_tokens": 40,
         "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 160}  # fmt: skip


async def measure(counters: Counters, n: int, store_url: str) -> float:
    store = open_store(store_url)
    directory = Directory(store)
    admin = Admin(directory)
    team = (await admin.new("team", {"max_budget": 1e9, "rpm_limit": 10**9}))["team_id"]
    made = await admin.generate_key({"models": ["gpt"], "max_budget": 1e9, "budget_duration": "30d",
                                     "rpm_limit": 10**9, "tpm_limit": 10**12, "max_parallel_requests": 10**6,
                                     "team_id": team})  # fmt: skip
    spend = SpendLog(store, directory)
    stages = [ModelAccess(), Budgets(spend), Limits(counters), Pricing(), spend]
    dep = make_deployment("openai/gpt-4o", api_key="k", model_name="gpt")
    response = {"status": "completed", "usage": USAGE}
    key_hash = digest(made["key"])
    await directory.caller(key_hash)  # warm: the cache holds the key, as it does under load

    async def one(i: int) -> None:
        caller = await directory.caller(key_hash)
        assert caller is not None
        admit(caller, "/v1/responses")
        call = Call(id=f"resp_{i}", params={"model": "gpt"}, deployment=dep, input_items=[], created_at=0,
                    new_id=str, meta={"caller": caller})  # fmt: skip
        await run_before(stages, call)
        run_after(stages, call, outcome_of(call, response))

    for i in range(1000):
        await one(i)
    await asyncio.sleep(0.3)  # let the writer and releases settle before measuring
    cpu = time.process_time()
    for i in range(n):
        await one(i)
        if i % 500 == 0:
            await asyncio.sleep(0)  # the spend writer and releases run, as they do between requests
    used = time.process_time() - cpu
    for stage in stages:
        if (close := getattr(stage, "aclose", None)) is not None:
            await close()
    await store.close()
    return used / n * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=20_000)
    p.add_argument("--redis", help="also measure Redis-shared counters, e.g. redis://127.0.0.1:6379/0")
    p.add_argument("--store", default="memory", help="where spend goes: memory (no I/O) or a postgresql:// URL")
    args = p.parse_args()
    us = asyncio.run(measure(LocalCounters(), args.n, args.store))
    print(f"per-process counters: {us:.1f} us CPU per call")
    if args.redis:
        us = asyncio.run(measure(RedisCounters(args.redis), args.n // 4, args.store))
        print(f"Redis counters:       {us:.1f} us CPU per call")


if __name__ == "__main__":
    main()
