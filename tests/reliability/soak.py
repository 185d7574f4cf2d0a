"""The soak: a long run of mixed requests through two proxy workers, sampling each worker's
resident memory and open file descriptors, to show that neither grows.

Run `python -m tests.reliability.soak --requests 1000000` (what `tests/reliability/run --soak`
does); tests/reliability/test_soak.py runs a short one. Requests (the built-in demo model, so
the proxy itself is measured, with the SQLite store): plain creates, streams, retrieves of
an earlier response, store=false creates, in a fixed rotation, from an asyncio + aiohttp load
generator holding a few dozen connections.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson

from tests.e2e.proxy_process import ProxyProcess, start_proxy

WARMUP = 0.1  # the first tenth of a run warms caches and pools; growth is measured after it
LIMIT = 0.10  # growth allowed after warm-up


@dataclass
class Sample:
    requests: int
    rss_kb: dict[int, int]
    fds: dict[int, int]


@dataclass
class Soak:
    requests: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)

    def growth(self) -> tuple[float, float]:
        """The largest growth of a worker's RSS, and that of the workers' open fds together: the
        last sample over the first after warm-up."""
        after = [s for s in self.samples if s.requests >= WARMUP * self.samples[-1].requests]
        base, last = after[0], after[-1]

        rss = max((last.rss_kb[p] - base.rss_kb[p]) / base.rss_kb[p] for p in base.rss_kb if p in last.rss_kb)
        # descriptors summed: the client's connections move between the workers as they reconnect
        fds = (sum(last.fds.values()) - sum(base.fds.values())) / sum(base.fds.values())
        return rss, fds


def workers(proxy: ProxyProcess) -> list[int]:
    """The worker processes of a pre-forking proxy (its children)."""
    pid = proxy.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children] or [pid]


def sample(pids: list[int], requests: int) -> Sample:
    rss, fds = {}, {}
    for pid in pids:
        status = Path(f"/proc/{pid}/status").read_text()
        rss[pid] = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
        fds[pid] = len(os.listdir(f"/proc/{pid}/fd"))
    return Sample(requests, rss, fds)


async def one(session: aiohttp.ClientSession, url: str, n: int, ids: list[str], soak: Soak) -> None:
    kind = n % 4
    # one call in 50 closes its connection: new ones spread over both workers, and churn
    headers = {"connection": "close"} if n % 50 == 49 else None
    try:
        if kind == 2 and ids:
            async with session.get(f"{url}/responses/{ids[n % len(ids)]}", headers=headers) as r:
                await r.read()
                status = r.status
        else:
            body = {"model": "demo", "input": f"soak {n}", "stream": kind == 1, "store": kind != 3}
            async with session.post(f"{url}/responses", data=orjson.dumps(body), headers=headers) as r:
                data = await r.read()
                status = r.status
                if status == 200 and kind == 0 and len(ids) < 1000:
                    ids.append(orjson.loads(data)["id"])
                if kind == 1 and b"response.completed" not in data:
                    status = -1  # a stream that did not complete
    except (aiohttp.ClientError, TimeoutError) as exc:
        soak.errors[type(exc).__name__] = soak.errors.get(type(exc).__name__, 0) + 1
        return
    if status != 200:
        soak.errors[str(status)] = soak.errors.get(str(status), 0) + 1


async def drive(proxy: ProxyProcess, total: int, every: int, concurrency: int = 32, report: bool = False) -> Soak:
    soak = Soak()
    pids = workers(proxy)
    ids: list[str] = []
    headers = {"authorization": "Bearer k", "content-type": "application/json"}
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=concurrency)
    started = time.monotonic()
    async with aiohttp.ClientSession(headers=headers, timeout=timeout, connector=connector) as session:
        soak.samples.append(sample(pids, 0))
        counter = iter(range(total))

        async def client() -> None:
            for n in counter:
                await one(session, proxy.url, n, ids, soak)
                soak.requests += 1
                if soak.requests % every == 0:
                    soak.samples.append(s := sample(pids, soak.requests))
                    if report:
                        rate = soak.requests / (time.monotonic() - started)
                        print(f"{s.requests:>9} requests  rss_kb {s.rss_kb}  fds {s.fds}  {rate:.0f} req/s", flush=True)

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return soak


def run(total: int, every: int, report: bool = False) -> Soak:
    folder = Path(tempfile.mkdtemp(prefix="llmrelay-soak-"))
    with start_proxy("demo", "--workers", "2", store=str(folder / "store.db")) as proxy:
        return asyncio.run(drive(proxy, total, every, report=report))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--every", type=int, default=100_000, help="sample every N requests")
    args = parser.parse_args(argv)
    started = time.monotonic()
    soak = run(args.requests, args.every, report=True)
    rss, fds = soak.growth()
    minutes = (time.monotonic() - started) / 60
    print(f"soak: {soak.requests} requests in {minutes:.1f} min, errors {soak.errors or 0}")
    print(f"growth after warm-up: rss {rss:+.1%}, fds {fds:+.1%} (limit {LIMIT:.0%})")
    return 0 if not soak.errors and rss < LIMIT and fds < LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
