"""CPU that telemetry adds to one call, off and on, measured in process.

Each call runs what the proxy runs around a translated call: the stages (pricing, and
telemetry's when on), one upstream exchange (a canned reply, no network) and one store write
(the memory store). Telemetry off is the proxy as configured without any callback: no stage,
no wrapper. On: Prometheus metrics (single-process, and the mmap files used with --workers),
and OpenTelemetry tracing (three spans a call: the call, the upstream exchange, the store
write), exported over OTLP/HTTP to a receiver in another process, so the batch thread's
encoding and sending count and the receiver's work does not. Prints microseconds of CPU per
call, and the difference to telemetry off; and what the x-request-id middleware, which is
always on, adds to an HTTP exchange.

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


async def measure(kind: str, n: int) -> float:
    from llmrelay.config import parse_config
    from llmrelay.gateway.prices import Pricing
    from llmrelay.gateway.stage import outcome_of, run_after, run_before
    from llmrelay.providers.base import Call
    from llmrelay.providers.registry import make_deployment
    from llmrelay.relay import Relay
    from llmrelay.store.base import StoredResponse
    from llmrelay.telemetry import Telemetry, telemetry_settings
    from llmrelay.transport import HttpRequest

    relay = Relay(store="memory")
    relay.stages = [Pricing()]

    async def send(req: HttpRequest, **kwargs: Any) -> Reply:
        return Reply()

    relay.http.send = send  # type: ignore[method-assign]
    if kind != "off":
        callbacks = {"metrics": ["prometheus"], "tracing": ["otel"]}[kind]
        config = parse_config({"model_list": [], "litellm_settings": {"callbacks": callbacks}})
        telemetry = Telemetry(telemetry_settings(config))
        telemetry.install(relay)
    dep = make_deployment("anthropic/claude-sonnet-4-5", api_key="k", model_name="claude")
    response = {"status": "completed", "usage": USAGE}
    request = HttpRequest("POST", "https://api.anthropic.com/v1/messages")

    async def one(i: int) -> None:
        call = Call(id=f"resp_{i}", params={"model": "claude"}, deployment=dep, input_items=[], created_at=0,
                    new_id=str, meta={"caller": None, "request_id": f"r{i}", "trace": None})  # fmt: skip
        await run_before(relay.stages, call)
        await relay.http.send(request, timeout=None)
        await relay.store.put(StoredResponse(id=call.id, response=response, input_items=[], deployment=dep.id))
        run_after(relay.stages, call, outcome_of(call, response))

    for i in range(2000):
        await one(i)
    await asyncio.sleep(0.2)
    cpu = time.process_time()
    for i in range(n):
        await one(i)
        if i % 200 == 0:
            await asyncio.sleep(0)
    await relay.aclose()  # the spans still batched are exported: their CPU counts
    if kind == "tracing" and telemetry.tracing is not None and telemetry.tracing.batcher.dropped:
        raise SystemExit(f"{telemetry.tracing.batcher.dropped} spans dropped: their CPU would not count")
    return (time.process_time() - cpu) / n * 1e6


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


def run(kind: str, n: int, env: dict[str, str]) -> float:
    """One measurement in a fresh interpreter (prometheus_client picks its mode at import)."""
    code = f"import asyncio, bench.telemetry_cpu as b; print(asyncio.run(b.measure({kind!r}, {n})))"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    return float(out.stdout.split()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=3, help="each measured this often, interleaved; the median")
    p.add_argument("--cases", help="comma-separated: off,metrics,multiprocess,tracing (default all)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    assert receiver.stdout is not None
    port = receiver.stdout.readline().strip()
    mp_dir = tempfile.mkdtemp(prefix="llmrelay-bench-metrics-")
    cases = {
        "off": {},
        "metrics": {},
        "metrics, multiprocess": {"PROMETHEUS_MULTIPROC_DIR": mp_dir},
        # A queue that holds the whole run: this loop never waits for I/O as a proxy does, so
        # the export thread lags behind it, and a dropped span would be CPU not counted.
        "tracing": {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", "OTEL_BSP_MAX_QUEUE_SIZE": "1000000"},
    }
    if args.cases:
        wanted = {"off", *args.cases.split(",")}
        cases = {name: env for name, env in cases.items() if name.split(", ")[-1] in wanted}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    base = {"PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    results: dict[str, list[float]] = {name: [] for name in cases}
    try:
        for _ in range(args.rounds):
            for name, env in cases.items():
                kind = name.split(",")[0]
                results[name].append(run(kind, args.n, {**base, **env}))
    finally:
        receiver.terminate()
        shutil.rmtree(mp_dir, ignore_errors=True)
    medians = {name: sorted(v)[len(v) // 2] for name, v in results.items()}
    if args.json:
        print(json.dumps(medians))
        return
    off = medians["off"]
    for name, us in medians.items():
        extra = "" if name == "off" else f"  (+{us - off:.1f} us = {(us - off) / 1000:.3f} ms)"
        print(f"{name:<22} {us:6.1f} us CPU per call{extra}")
    if not args.cases:
        print(f"x-request-id (always on): +{asyncio.run(request_id_cost(args.n * 5)):.1f} us CPU per HTTP exchange")


if __name__ == "__main__":
    main()
