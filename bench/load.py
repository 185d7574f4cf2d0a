"""Load: wrk with a Lua script per route, and the CPU the gateway and nginx spent."""

from __future__ import annotations

import json
import re
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from canned import _dumps
from procs import cpu_seconds
from scenarios import Route

LUA_DONE = r"""
report = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50": %.0f, "p90": %.0f, "p99": %.0f, "max": %.0f, "mean": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
done = report
"""


def lua_string(s: str) -> str:
    level = "=" * 3
    assert f"]{level}]" not in s
    return f"[{level}[{s}]{level}]"


def write_lua(path: Path, route: Route) -> None:
    lines = ['wrk.method = "POST"', f"wrk.body = {lua_string(_dumps(route.body))}"]
    for k, v in {"content-type": "application/json", **route.headers}.items():
        lines.append(f"wrk.headers[ {lua_string(k)} ] = {lua_string(v)}")  # "[[" would open a long string
    path.write_text("\n".join(lines) + "\n" + LUA_DONE)


@dataclass
class Trial:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    cpu_ms_per_req: float | None  # the gateway's process tree; for `direct`, nginx's own
    upstream_cpu_ms_per_req: float
    polls_per_seq: float | None = None  # `background`: GETs per completed create-then-poll sequence


def run_wrk(
    url: str, lua: Path, c: int, duration: float, gateway_pid: int | Sequence[int] | None, nginx_pid: int
) -> Trial:
    """One wrk run; `gateway_pid` is the gateway's root process, or the roots of several
    instances whose CPU is summed. A `background` script's sequences count as its requests."""
    gateways = [gateway_pid] if isinstance(gateway_pid, int) else list(gateway_pid or [])
    g0 = sum(cpu_seconds(pid) for pid in gateways)
    u0 = cpu_seconds(nginx_pid)
    # One wrk thread: it stays off the gateway's second core as far as it can on a small box.
    argv = ["wrk", "-t1", f"-c{c}", f"-d{duration:g}s", "--timeout", "10s", "--latency", "-s", str(lua), url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    g1 = sum(cpu_seconds(pid) for pid in gateways)
    u1 = cpu_seconds(nginx_pid)
    m = re.search(r"^WRKJSON (\{.*\})$", out.stdout, re.M)
    if out.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout[-500:]} {out.stderr[-500:]}")
    r = json.loads(m.group(1))
    errors = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
    ok = max(r["requests"] - r["status"], 0)
    polls = None
    if bg := re.search(r"^WRKBG (\{.*\})$", out.stdout, re.M):
        b = json.loads(bg.group(1))  # the Lua counted the non-2xx among its `bad`
        errors, ok = errors - r["status"] + b["bad"], b["sequences"]
        polls = b["polls"] / ok if ok else None
    seconds = r["duration_us"] / 1e6

    def per(cpu: float) -> float:
        return cpu * 1000 / ok if ok else float("nan")

    return Trial(
        rps=ok / seconds,
        p50_ms=r["p50"] / 1000,
        p99_ms=r["p99"] / 1000,
        requests=ok,
        errors=errors,
        cpu_ms_per_req=per(g1 - g0) if gateways else per(u1 - u0),
        upstream_cpu_ms_per_req=per(u1 - u0),
        polls_per_seq=polls,
    )


@dataclass
class Cell:
    scenario: str
    concurrency: int
    system: str
    via: str = ""
    skipped: str = ""
    trials: list[Trial] = field(default_factory=list)

    def median(self, attr: str) -> float | None:
        values = [getattr(t, attr) for t in self.trials if getattr(t, attr) is not None]
        return statistics.median(values) if values else None
