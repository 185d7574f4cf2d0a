"""CPU per call of an SDK's async Responses create against the nginx upstream, in process.

    python bench/sdk_cpu.py --client openai   --base http://127.0.0.1:PORT/plain/v1
    python bench/sdk_cpu.py --client llmrelay --base ... --store /tmp/sdk.db   # from the checkout
    <litellm venv>/bin/python bench/sdk_cpu.py --client litellm --base ...

`--concurrency` calls run at once for `--calls` calls after `--warmup` unmeasured ones; prints
one JSON line: CPU ms per call (process time: user + system), wall time, calls per second.
Each client is imported only when asked for, so this file runs in LiteLLM's venv too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

TEXT = "Say hello."


def make_call(args: argparse.Namespace) -> Callable[[], Awaitable[Any]]:
    if args.client == "openai":
        from openai import AsyncOpenAI

        client = AsyncOpenAI(base_url=args.base, api_key="sk-bench", max_retries=0)
        return lambda: client.responses.create(model="gpt-4o", input=TEXT, max_output_tokens=256)
    if args.client == "llmrelay":
        import llmrelay

        relay = llmrelay.configure(store=f"sqlite:///{args.store}" if args.store else "memory")
        kw = {"api_base": args.base, "api_key": "sk-bench"}
        return lambda: llmrelay.aresponses(model="openai/gpt-4o", input=TEXT, max_output_tokens=256, relay=relay, **kw)
    if args.client == "litellm":
        import litellm

        litellm.telemetry = False
        kw = {"api_base": args.base, "api_key": "sk-bench"}
        return lambda: litellm.aresponses(model="openai/gpt-4o", input=TEXT, max_output_tokens=256, **kw)
    raise SystemExit(f"unknown client {args.client}")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    call = make_call(args)

    async def worker(n: int) -> None:
        for _ in range(n):
            response = await call()
            assert "tok00" in json.dumps(response.model_dump() if hasattr(response, "model_dump") else response)

    async def batch(total: int) -> None:
        each, extra = divmod(total, args.concurrency)
        await asyncio.gather(*(worker(each + (i < extra)) for i in range(args.concurrency)))

    await batch(args.warmup)
    c0, w0 = time.process_time(), time.perf_counter()
    await batch(args.calls)
    c1, w1 = time.process_time(), time.perf_counter()
    return {
        "client": args.client,
        "calls": args.calls,
        "cpu_ms_per_call": 1000 * (c1 - c0) / args.calls,
        "calls_per_s": args.calls / (w1 - w0),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--client", required=True, choices=["openai", "llmrelay", "litellm"])
    p.add_argument("--base", required=True, help="the upstream's /v1 base URL")
    p.add_argument("--calls", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--store", help="llmrelay's SQLite file (default: the memory store)")
    args = p.parse_args()
    print(json.dumps(asyncio.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
