"""Many open streams: N concurrent streams from an upstream sending one delta every 100 ms for
20 s (bench/slow_upstream.py), held by bench/stream_load.py through each gateway in turn.

Per (N, system): RSS per open stream (the gateway tree's VmRSS with all N open, minus before,
over N), gateway CPU per delta, each delta's latency at the client (p50/p99) and what the gateway
adds to it (minus the same percentile straight from the upstream at the same N), and errors.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from common import BENCH, RESULTS, Json, log
from procs import Proc, cpu_seconds, spawn
from scenarios import SCENARIOS, Route
from systems import SYSTEM_CLASSES, System

TARGET_N = 2000


def start_slow_upstream(workdir: Path, interval: float, seconds: float) -> tuple[Proc, int]:
    argv = [sys.executable, str(BENCH / "slow_upstream.py"), "--interval", str(interval), "--seconds", str(seconds)]
    proc = spawn("slow-upstream", argv, workdir, cwd=BENCH)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in proc.log_path.read_text().splitlines():
            if line.startswith("PORT "):
                return proc, int(line.split()[1])
        if not proc.alive():
            break
        time.sleep(0.1)
    raise RuntimeError(f"slow upstream did not start:\n{proc.log_tail()}")


def load(port: int, path: str, body: Json, headers: dict[str, str], n: int, seconds: float, pid: int | None) -> Json:
    argv = [sys.executable, str(BENCH / "stream_load.py"), "--port", str(port), "--path", path]
    argv += ["--body", json.dumps(body), "--n", str(n), "--seconds", str(seconds), "--ramp", str(min(5.0, seconds / 4))]
    argv += [f"--header={k}: {v}" for k, v in headers.items()]
    if pid:
        argv += ["--pid", str(pid)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120, cwd=BENCH)
    if out.returncode != 0 or not out.stdout.strip():
        raise RuntimeError(f"stream_load failed: {out.stderr[-800:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace, workdir: Path) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the gateways inherit it
    upstream, port = start_slow_upstream(workdir, args.stream_interval, args.stream_seconds)
    s = SCENARIOS["native-stream"]
    names = [n for n in args.systems if n not in ("floor", "baseline")] + (["floor"] if "floor" in args.systems else [])
    results: list[Json] = []
    try:
        for n in args.streams:
            for name in ["direct", *names]:
                # Each gateway starts afresh for each N: its RSS per stream is then the cost of N
                # streams, not of what a heap grown by an earlier N could not hold.
                system = None if name == "direct" else _started(SYSTEM_CLASSES[name](workdir, port))
                if name == "direct":
                    route = Route("/sse/v1/responses", {}, {"model": "gpt-4o", "stream": True})
                    pid, p = None, port
                elif system is None:
                    continue
                else:
                    maybe = system.route(s)
                    assert maybe is not None and system.proc is not None
                    route, pid, p = maybe, system.proc.pid, system.port
                log(f"open streams: N={n} through {name} ({args.stream_seconds:g}s)")
                u0, t0 = cpu_seconds(upstream.pid), time.monotonic()
                try:
                    r = load(p, route.path, route.body, route.headers, n, args.stream_seconds, pid)
                except Exception as exc:
                    log(f"N={n} {name}: {exc}")
                    continue
                finally:
                    if system is not None:
                        system.stop()
                r["system"] = name
                r["upstream_cpu_pct"] = 100 * (cpu_seconds(upstream.pid) - u0) / (time.monotonic() - t0)
                r["interval_s"] = args.stream_interval
                results.append(r)
                log(f"  {json.dumps(r)}")
                time.sleep(2)  # closed connections settle before the next system
    finally:
        upstream.stop()
    text = table(results)
    print(text, flush=True)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"open-streams-{args.stream_interval:g}s.json"
    path.write_text(json.dumps({"results": results, "table": text}, indent=2) + "\n")
    log(f"results written to {path}")


def _started(system: System) -> System | None:
    log(f"starting {system.name} against the slow upstream")
    try:
        system.start()
    except Exception as exc:
        log(f"{system.name} could not start: {exc}")
        system.stop()
        return None
    return system


def table(results: list[Json]) -> str:
    direct = {r["n"]: r for r in results if r["system"] == "direct"}
    head = (
        f"{'N':>5}  {'system':<10}{'done':>6}{'err':>6}{'open':>6}{'RSS KB/stream':>14}{'CPU us/delta':>13}"
        f"{'p50 ms':>8}{'p99 ms':>8}{'+p50':>8}{'+p99':>8}{'client CPU%':>12}{'upstream CPU%':>14}"
    )
    out = [head, "-" * len(head)]
    for r in results:
        lat, base = r["latency_ms"], direct.get(r["n"], {}).get("latency_ms", {})
        direct_row = r["system"] == "direct"
        rss = (r["gateway_rss_open_kb"] - r["gateway_rss_before_kb"]) / r["n"] if not direct_row else None
        cpu = 1e6 * r["gateway_cpu_s"] / r["deltas_in_window"] if r["deltas_in_window"] and not direct_row else None

        def added(q: str, lat: Json = lat, base: Json = base) -> str:
            return f"{lat[q] - base[q]:.2f}" if lat.get(q) is not None and base.get(q) is not None else "-"

        out.append(
            f"{r['n']:>5}  {r['system']:<10}{r['completed']:>6}{sum(r['failed'].values()):>6}{r['open_mid_window']:>6}"
            f"{_f(rss, 1):>14}{_f(cpu, 1):>13}{_f(lat['p50'], 2):>8}{_f(lat['p99'], 2):>8}"
            f"{'-' if direct_row else added('p50'):>8}{'-' if direct_row else added('p99'):>8}"
            f"{r['client_cpu_pct']:>12.0f}{r.get('upstream_cpu_pct', 0):>14.0f}"
        )
    failed = {f"{r['system']}@{r['n']}": r["failed"] for r in results if r["failed"]}
    if failed:
        out.append(f"errors: {failed}")
    out.append(
        "RSS KB/stream: gateway VmRSS with all N open minus before, over N; CPU us/delta: gateway CPU while all were"
        " open over the deltas received; p50/p99: stamp-to-arrival latency of each delta; +p50/+p99: minus direct's."
    )
    return "\n".join(out)


def _f(v: float | None, digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}f}"
