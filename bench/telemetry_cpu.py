"""CPU that telemetry adds to one call, off and on, measured in process.

Each call runs what the proxy runs around a translated call: the stages (pricing, and
telemetry's when on), one upstream exchange (a canned reply, no network) and one store write
(the memory store). Telemetry off is the proxy as configured without any callback: no stage,
no wrapper. On: Prometheus metrics (single-process, and the mmap files used with --workers),
and OpenTelemetry tracing (three spans a call: the call, the upstream exchange, the store
write), exported over OTLP/HTTP to a receiver in another process, so the batch thread's
encoding and sending count and the receiver's work does not (it keeps connections, as
collectors do). Off and on run in one process, in alternating chunks (`measure`), so that the
load of a shared machine weighs on both alike. Prints microseconds of CPU per call off, what
each kind adds (the median, every round, and the share of telemetry's own threads); and what
the x-request-id middleware, which is always on, adds to an HTTP exchange.

    PYTHONPATH=. python bench/telemetry_cpu.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

USAGE = {"input_tokens": 120, "input_tokens_details": {"cached_tokens": 64}, "output_tokens": 40,
         "output_tokens_details": {"reasoning_tokens": 8}, "total_tokens": 160}  # fmt: skip
RECEIVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keeps the connection, as collectors do
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""


class Reply:
    status = 200


def _thread_cpu(thread: Any) -> float:
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


async def measure(kind: str, n: int, chunk: int = 250) -> tuple[float, float, float]:
    """Microseconds of CPU per call without telemetry, and with `kind` on the event loop's thread
    and in telemetry's own threads (metrics flush, span export), in one process: two relays
    alike but for telemetry, run in alternating chunks of calls so that the machine's load weighs
    on both alike. Each side's share is the main thread's CPU during its chunks; telemetry's
    shutdown (what it still holds, written or exported) counts to its side."""
    import gc

    from llmrelay.config import parse_config
    from llmrelay.gateway.prices import Pricing
    from llmrelay.gateway.stage import outcome_of, run_after, run_before
    from llmrelay.providers.base import Call
    from llmrelay.providers.registry import make_deployment
    from llmrelay.relay import Relay
    from llmrelay.store.base import StoredResponse
    from llmrelay.telemetry import Telemetry, telemetry_settings
    from llmrelay.transport import HttpRequest

    async def send(req: HttpRequest, **kwargs: Any) -> Reply:
        return Reply()

    def relay_with(callbacks: list[str]) -> tuple[Relay, Telemetry | None]:
        relay = Relay(store="memory")
        relay.stages = [Pricing()]
        relay.http.send = send  # type: ignore[method-assign]
        if not callbacks:
            return relay, None
        config = parse_config({"model_list": [], "litellm_settings": {"callbacks": callbacks}})
        telemetry = Telemetry(telemetry_settings(config))
        telemetry.install(relay)
        return relay, telemetry

    ended: list[float] = []  # the CPU of each telemetry thread, as it ends

    def counted(run: Any) -> Any:
        def wrapper(self: Any) -> None:
            try:
                run(self)
            finally:
                ended.append(time.thread_time())

        return wrapper

    if kind == "tracing":
        from llmrelay.telemetry.otlp import Batcher

        Batcher._run = counted(Batcher._run)  # type: ignore[method-assign]
    else:
        from llmrelay.telemetry.metrics import Metrics

        if hasattr(Metrics, "_run"):
            Metrics._run = counted(Metrics._run)  # type: ignore[attr-defined]
    off, _ = relay_with([])
    on, telemetry = relay_with({"metrics": ["prometheus"], "tracing": ["otel"]}[kind])
    assert telemetry is not None
    threads = [t for t in (getattr(telemetry.metrics, "_thread", None),
                           getattr(telemetry.tracing and telemetry.tracing.batcher, "_thread", None)) if t]  # fmt: skip
    dep = make_deployment("anthropic/claude-sonnet-4-5", api_key="k", model_name="claude")
    response = {"status": "completed", "usage": USAGE}
    request = HttpRequest("POST", "https://api.anthropic.com/v1/messages")

    async def one(relay: Relay, i: int) -> None:
        call = Call(id=f"resp_{i}", params={"model": "claude"}, deployment=dep, input_items=[], created_at=0,
                    new_id=str, meta={"caller": None, "request_id": f"r{i}", "trace": None})  # fmt: skip
        await run_before(relay.stages, call)
        await relay.http.send(request, timeout=None)
        await relay.store.put(StoredResponse(id=call.id, response=response, input_items=[], deployment=dep.id))
        run_after(relay.stages, call, outcome_of(call, response))

    gc.collect()
    gc.freeze()  # as the proxy does once started
    for relay in (off, on):
        for i in range(2000):
            await one(relay, i)
    await asyncio.sleep(0.5)
    cpu = {"off": 0.0, "on": 0.0, "threads": -sum(_thread_cpu(t) for t in threads)}
    for start in range(0, n, chunk):
        for side, relay in (("off", off), ("on", on)):
            t = time.thread_time()
            for i in range(start, start + chunk):
                await one(relay, i)
            cpu[side] += time.thread_time() - t
        await asyncio.sleep(0)
    t = time.thread_time()
    await on.aclose()  # what is still queued is written or exported: its CPU counts
    cpu["on"] += time.thread_time() - t
    cpu["threads"] += sum(ended)
    if telemetry.tracing is not None and telemetry.tracing.batcher.dropped:
        raise SystemExit(f"{telemetry.tracing.batcher.dropped} spans dropped: their CPU would not count")
    return cpu["off"] / n * 1e6, cpu["on"] / n * 1e6, cpu["threads"] / n * 1e6


async def request_id_cost(n: int) -> float:
    """CPU the always-on x-request-id middleware adds to one HTTP exchange (a head and a body)."""
    from llmrelay.proxy.request_id import RequestId

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b"{}"})

    async def send(message: dict[str, Any]) -> None:
        return None

    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"), (b"authorization", b"Bearer k")]
    wrapped = RequestId(app)
    used = []
    for target in (app, wrapped, app, wrapped):
        cpu = time.process_time()
        for _ in range(n):
            await target({"type": "http", "headers": headers}, None, send)
        used.append(time.process_time() - cpu)
    return ((used[1] + used[3]) - (used[0] + used[2])) / (2 * n) * 1e6


def run(kind: str, n: int, env: dict[str, str]) -> tuple[float, float, float]:
    """One measurement in a fresh interpreter (prometheus_client picks its mode at import)."""
    code = f"import asyncio, bench.telemetry_cpu as b; print(*asyncio.run(b.measure({kind!r}, {n})))"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    off, on, threads = out.stdout.split()[-3:]
    return float(off), float(on), float(threads)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=20_000, help="calls each side, per measurement")
    p.add_argument("--rounds", type=int, default=3, help="each measured this often, interleaved; the median")
    p.add_argument("--cases", help="comma-separated: metrics,multiprocess,tracing (default all)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    assert receiver.stdout is not None
    port = receiver.stdout.readline().strip()
    mp_dir = tempfile.mkdtemp(prefix="llmrelay-bench-metrics-")
    cases = {
        "metrics": {},
        "metrics, multiprocess": {"PROMETHEUS_MULTIPROC_DIR": mp_dir},
        # A queue that holds the whole run: this loop never waits for I/O as a proxy does, so
        # the export thread lags behind it, and a dropped span would be CPU not counted.
        "tracing": {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", "OTEL_BSP_MAX_QUEUE_SIZE": "1000000"},
    }
    if args.cases:
        wanted = set(args.cases.split(","))
        cases = {name: env for name, env in cases.items() if name.split(", ")[-1] in wanted}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    base = {"PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    offs: list[float] = []
    added: dict[str, list[float]] = {name: [] for name in cases}
    threads: dict[str, list[float]] = {name: [] for name in cases}
    try:
        for _ in range(args.rounds):
            for name, env in cases.items():
                off, on, in_threads = run(name.split(",")[0], args.n, {**base, **env})
                offs.append(off)
                added[name].append(on + in_threads - off)
                threads[name].append(in_threads)
    finally:
        receiver.terminate()
        shutil.rmtree(mp_dir, ignore_errors=True)
    medians = {"off": _median(offs), **{name: _median(v) for name, v in added.items()}}
    if args.json:
        print(json.dumps({"medians": medians, "added": added, "threads": threads}))
        return
    print(f"{'off':<22} {medians['off']:6.1f} us CPU per call (median of {len(offs)})")
    for name, us in added.items():
        spread = ", ".join(f"{x:+.1f}" for x in sorted(us))
        print(f"{name:<22} {medians[name]:+6.1f} us = {medians[name] / 1000:.3f} ms CPU per call ({spread}); "
              f"in its threads {_median(threads[name]):.1f} us")  # fmt: skip
    if not args.cases:
        print(f"x-request-id (always on): +{asyncio.run(request_id_cost(args.n * 5)):.1f} us CPU per HTTP exchange")


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


if __name__ == "__main__":
    main()
