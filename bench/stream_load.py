"""The open-streams load generator: N concurrent streamed POSTs held open, each delta's
latency read from the stamp bench/slow_upstream.py wrote into it.

Raw asyncio protocols on uvloop, not wrk: wrk measures whole responses, not the gaps inside a
stream, and its Lua hooks see no body chunks; a protocol's data_received costs a few
microseconds per delta (one regex scan of the bytes), so one process holds thousands of
streams. Its own CPU is reported beside the gateway's, to show it was not the limit.

Prints one JSON line: latencies (ns, each delta's arrival minus its stamp, first delta of a
stream excluded), completed and failed streams, and the gateway's RSS and CPU sampled while
all N were open.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import time
from array import array

from procs import cpu_seconds, tree

STAMP = re.compile(rb"t=(\d+) ")


class Stats:
    def __init__(self) -> None:
        self.latencies = array("q")
        self.window = False  # only deltas while every stream is open count
        self.deltas_in_window = 0
        self.completed = 0
        self.failed: dict[str, int] = {}
        self.open = 0

    def fail(self, why: str, n: int = 1) -> None:
        self.failed[why] = self.failed.get(why, 0) + n


class Stream(asyncio.Protocol):
    def __init__(self, request: bytes, stats: Stats, done: asyncio.Future[None]) -> None:
        self.request = request
        self.stats = stats
        self.done = done
        self.tail = b""
        self.status_checked = False
        self.first = True
        self.finished = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.stats.open += 1
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        buf = self.tail + data
        if not self.status_checked:
            if len(buf) < 12:
                self.tail = buf
                return
            self.status_checked = True
            if not buf.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
                self.stats.fail(buf[:12].decode(errors="replace"))
                self.finished = True
                assert self.transport is not None
                self.transport.close()
                return
        end = 0
        stats = self.stats
        for m in STAMP.finditer(buf):
            end = m.end()
            if self.first:
                self.first = False
                continue
            if stats.window:
                stats.latencies.append(now - int(m.group(1)))
                stats.deltas_in_window += 1
        if b"response.completed" in buf:
            self.finished = True
            stats.completed += 1
            assert self.transport is not None
            self.transport.close()
            return
        self.tail = buf[max(end, len(buf) - 64) :]

    def connection_lost(self, exc: Exception | None) -> None:
        self.stats.open -= 1
        if not self.finished:
            self.stats.fail("closed early")
        if not self.done.done():
            self.done.set_result(None)


def rss_kb(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


async def run(args: argparse.Namespace) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    stats = Stats()
    body = args.body.encode()
    head = f"POST {args.path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
    if args.auth:
        head += f"authorization: {args.auth}\r\n"
    for h in args.header or []:
        head += h + "\r\n"
    request = (head + f"content-length: {len(body)}\r\n\r\n").encode() + body
    gateway = [p for p in tree(args.pid)] if args.pid else []
    rss_before = rss_kb(gateway)
    dones: list[asyncio.Future[None]] = []
    t0 = loop.time()

    async def open_one() -> None:
        done = loop.create_future()
        dones.append(done)
        try:
            await loop.create_connection(lambda: Stream(request, stats, done), "127.0.0.1", args.port)
        except OSError as exc:
            stats.fail(f"connect: {exc.__class__.__name__}")
            done.set_result(None)

    # Opened evenly over the ramp, so the upstream's pacing slots fill evenly too.
    tasks = []
    for i in range(args.n):
        delay = t0 + args.ramp * i / args.n - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(open_one()))
    await asyncio.gather(*tasks)
    await asyncio.sleep(max(0.0, t0 + args.ramp + 1.0 - loop.time()))
    # The window: every stream open (the first ones end `seconds` after they began).
    window = max(1.0, args.seconds - args.ramp - 2.0)
    gateway = [p for p in tree(args.pid)] if args.pid else []
    cpu0, me0, w0 = cpu_seconds(args.pid) if args.pid else 0.0, _own_cpu(), loop.time()
    stats.window = True
    await asyncio.sleep(window / 2)
    rss_open = rss_kb(gateway)
    open_mid = stats.open
    await asyncio.sleep(window / 2)
    stats.window = False
    cpu1, me1, w1 = cpu_seconds(args.pid) if args.pid else 0.0, _own_cpu(), loop.time()
    try:
        await asyncio.wait_for(asyncio.shield(asyncio.gather(*dones)), args.seconds + 30)
    except TimeoutError:  # a gateway too far behind: what did not finish counts as failed
        stats.fail("unfinished", sum(not d.done() for d in dones))
    lat = sorted(stats.latencies)

    def pct(q: float) -> float | None:
        return lat[min(len(lat) - 1, int(q * len(lat)))] / 1e6 if lat else None

    return {
        "n": args.n,
        "open_mid_window": open_mid,
        "completed": stats.completed,
        "failed": stats.failed,
        "deltas_in_window": stats.deltas_in_window,
        "window_s": w1 - w0,
        "latency_ms": {"p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99), "max": pct(1.0)},
        "gateway_cpu_s": cpu1 - cpu0,
        "gateway_rss_before_kb": rss_before,
        "gateway_rss_open_kb": rss_open,
        "client_cpu_pct": 100 * (me1 - me0) / (w1 - w0),
    }


def _own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/v1/responses")
    p.add_argument("--body", required=True)
    p.add_argument("--auth")
    p.add_argument("--header", action="append")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--ramp", type=float, default=4.0)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--pid", type=int, help="the gateway's root process: RSS and CPU of its tree")
    args = p.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(run(args))), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
