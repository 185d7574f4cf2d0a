"""The SDK run: llmrelay.aresponses, the openai SDK's AsyncOpenAI().responses.create (the floor
for an SDK) and litellm.aresponses (in its venv) against the same nginx upstream, each in its own
process (bench/sdk_cpu.py), trials interleaved; CPU per call, median of the trials."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from common import BENCH, HOST, RESULTS, ROOT, Json, log
from installs import litellm_venv
from upstream import start_nginx

CLIENTS = ("openai", "llmrelay", "litellm")


def run(args: argparse.Namespace, workdir: Path) -> None:
    nginx, port = start_nginx(workdir)
    base = f"http://{HOST}:{port}/plain/v1"
    samples: dict[str, list[Json]] = {c: [] for c in CLIENTS}
    try:
        pythons = {"openai": sys.executable, "llmrelay": sys.executable}
        try:
            pythons["litellm"] = str(litellm_venv() / "bin" / "python")
        except Exception as exc:
            log(f"litellm unavailable: {exc}")
        for t in range(args.trials):
            order = list(pythons)
            order = order[t % len(order) :] + order[: t % len(order)]
            for client in order:
                argv = [pythons[client], str(BENCH / "sdk_cpu.py"), "--client", client, "--base", base]
                argv += ["--calls", str(args.sdk_calls), "--concurrency", "10"]
                if client == "llmrelay":
                    argv += ["--store", str(workdir / f"sdk-{t}.db")]
                env = {"PYTHONPATH": str(ROOT)} if client == "llmrelay" else {}
                out = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **env})
                if out.returncode != 0:
                    log(f"sdk {client} failed: {out.stderr[-600:]}")
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                samples[client].append(r)
                log(
                    f"sdk {client:<9} trial {t + 1}: {r['cpu_ms_per_call']:.3f} ms CPU/call, "
                    f"{r['calls_per_s']:.0f} calls/s"
                )
    finally:
        nginx.stop()
    rows = []
    floor = _median(samples["openai"], "cpu_ms_per_call")
    lines = [f"{'client':<10}{'CPU ms/call':>12}{'calls/s':>9}{'x openai':>10}", "-" * 41]
    for client in CLIENTS:
        cpu = _median(samples[client], "cpu_ms_per_call")
        if cpu is None:
            continue
        rps = _median(samples[client], "calls_per_s") or 0
        rows.append({"client": client, "cpu_ms_per_call": cpu, "calls_per_s": rps})
        lines.append(f"{client:<10}{cpu:>12.3f}{rps:>9.0f}{(cpu / floor if floor else 0):>9.2f}x")
    lines.append(f"median of {args.trials} trials x {args.sdk_calls} calls at concurrency 10, process CPU per call")
    text = "\n".join(lines)
    print(text, flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sdk.json").write_text(json.dumps({"rows": rows, "samples": samples, "table": text}, indent=2) + "\n")


def _median(rows: list[Json], key: str) -> float | None:
    return statistics.median(r[key] for r in rows) if rows else None
