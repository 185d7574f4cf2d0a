"""CPU the router adds to a call that does not fail, measured in process.

What the relay asks of the router when nothing fails: `pick` a deployment of the group, and,
where the router tracks calls (least-busy, latency, usage, max_parallel_requests), `started`,
`first_token` and `finished`. A call that does not fail does no rerouting work (`_open` and
`_send` reach the failover code only from an `except`), so this is the router's whole share
of such a call. Each case is measured against the same loop doing nothing but building the
call, in alternating chunks; the difference is printed in microseconds per call and as a share
of the proxy's CPU per request (`--per-request`, from `bench/run --quick`).

    PYTHONPATH=. python bench/router_cpu.py --per-request 0.47
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from llmrelay.providers.base import Call
from llmrelay.providers.registry import Deployment, make_deployment
from llmrelay.router import Router
from llmrelay.router.settings import RoutingSettings


def deployments(n: int, **extra: object) -> list[Deployment]:
    return [make_deployment("openai/gpt-4o", api_key="k", api_base=f"http://u{i}/v1", model_name="gpt", extra=extra)
            for i in range(n)]  # fmt: skip


def strategy(name: str) -> RoutingSettings:
    return RoutingSettings(routing_strategy=name)


CASES: dict[str, Callable[[], Router]] = {
    "one deployment (the bench's config)": lambda: Router(deployments(1)),
    "3 deployments, simple-shuffle": lambda: Router(deployments(3)),
    "3 deployments, least-busy": lambda: Router(deployments(3), settings=strategy("least-busy")),
    "3 deployments, latency-based": lambda: Router(deployments(3), settings=strategy("latency-based-routing")),
    "3 deployments, usage-based-v2, rpm/tpm": lambda: Router(
        deployments(3, rpm=10**9, tpm=10**12), settings=strategy("usage-based-routing-v2")
    ),
    "3 deployments, max_parallel_requests": lambda: Router(deployments(3, max_parallel_requests=10**6)),
}


def routed(router: Router, call: Call) -> None:
    """The router's part of one call that does not fail, as relay.py makes it."""
    call.deployment = router.pick("gpt")
    if router.tracks:
        router.started(call)
        router.first_token(call)
        router.finished(call, ok=True, tokens=160)


def per_call(router: Router, n: int, chunk: int = 1000) -> float:
    """Microseconds of CPU the router adds per call: routed and bare chunks alternated."""
    dep = router.pick("gpt")
    routed_cpu = bare_cpu = 0.0
    for _ in range(n // chunk):
        t = time.process_time()
        for i in range(chunk):
            call = Call(id="r", params={"model": "gpt"}, deployment=dep, input_items=[], created_at=i, new_id=str)
            routed(router, call)
        routed_cpu += time.process_time() - t
        t = time.process_time()
        for i in range(chunk):
            call = Call(id="r", params={"model": "gpt"}, deployment=dep, input_items=[], created_at=i, new_id=str)
        bare_cpu += time.process_time() - t
    return (routed_cpu - bare_cpu) / n * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=200_000)
    p.add_argument("--per-request", type=float, default=0.47, help="the proxy's CPU ms per request, for the share")
    args = p.parse_args()
    print(f"router CPU per call that does not fail ({args.n} calls each; share of {args.per_request} ms/request)")
    for name, make in CASES.items():
        us = min(per_call(make(), args.n) for _ in range(3))
        print(f"  {name:42s} {us:6.2f} us  {us / (args.per_request * 10):5.2f}%")


if __name__ == "__main__":
    main()
