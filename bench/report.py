"""The table, the targets and the JSON results of a run."""

from __future__ import annotations

import contextlib
import json
import platform
import statistics
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from common import CORES, RESULTS, Json, log
from installs import server_libs


class Reporting:
    """Bench's reporting half: medians into rows, rows into the table, targets, results file."""

    def get(self, s: str, c: int, system: str, attr: str) -> float | None:
        cell = self.cells.get((s, c, system))
        return cell.median(attr) if cell and cell.trials else None

    def rows(self) -> list[Json]:
        rows = []
        for s in self.args.scenarios:
            for c in self.args.concurrency:
                base_p50 = self.get(s, c, "direct", "p50_ms")
                mine_rps = self.get(s, c, "llmrelay", "rps")
                mine_cpu = self.get(s, c, "llmrelay", "cpu_ms_per_req")
                floor_cpu = self.get(s, c, "floor", "cpu_ms_per_req")
                for name in ["direct", *self.args.systems]:
                    cell = self.cells.get((s, c, name))
                    if cell is None:
                        continue
                    row: Json = {"scenario": s, "c": c, "system": name, "via": cell.via, "skipped": cell.skipped}
                    if cell.trials:
                        rps, p50 = cell.median("rps"), cell.median("p50_ms")
                        cpu = cell.median("cpu_ms_per_req")
                        row |= {
                            "rps": rps,
                            "p50_ms": p50,
                            "p99_ms": cell.median("p99_ms"),
                            "overhead_p50_ms": p50 - base_p50 if name != "direct" and base_p50 is not None else None,
                            "cpu_ms_per_req": cpu,
                            "nginx_cpu_ms_per_req": cell.median("upstream_cpu_ms_per_req"),
                            "errors": sum(t.errors for t in cell.trials),
                            "trials": len(cell.trials),
                        }
                        if (polls := cell.median("polls_per_seq")) is not None:
                            row["polls_per_seq"] = polls
                        if name not in ("direct", "floor") and floor_cpu and cpu:
                            row["floor_cpu_ratio"] = cpu / floor_cpu
                        if not name.startswith(("direct", "llmrelay", "floor")) and mine_rps and rps:
                            row["llmrelay_rps_ratio"] = mine_rps / rps
                            if mine_cpu and cpu:
                                row["llmrelay_cpu_ratio"] = cpu / mine_cpu
                    rows.append(row)
        return rows

    def table(self, rows: list[Json]) -> str:
        head = (
            f"{'scenario':<17}{'c':>3}  {'system':<11}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
            f"{'ovh p50':>9}{'CPU ms/req':>11}{'err':>5}{'x floor':>8}  {'llmrelay x rps':>14}{'x CPU':>7}  note"
        )
        out = [head, "-" * len(head)]
        prev = None
        for r in rows:
            if prev and (r["scenario"], r["c"]) != prev:
                out.append("")
            prev = (r["scenario"], r["c"])
            note = r.get("via") or {
                "direct": "nginx itself (CPU = nginx)",
                "llmrelay-nodelay": "TCP_NODELAY launcher",
                "floor": "bench/floor.py",
                "floor-lean": "the floor on llmrelay's upstream client",
            }.get(r["system"], "")
            if "polls_per_seq" in r:  # req/s and CPU are per create-then-poll sequence
                note = f"per sequence: 1 create + {r['polls_per_seq']:.2f} polls" + (f"; {note}" if note else "")
            if "rps" not in r:
                out.append(f"{r['scenario']:<17}{r['c']:>3}  {r['system']:<11}{'-':>9}  n/a: {r['skipped'][:90]}")
                continue
            out.append(
                f"{r['scenario']:<17}{r['c']:>3}  {r['system']:<11}"
                f"{r['rps']:>9.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
                f"{_fmt(r['overhead_p50_ms'], 2):>9}{_fmt(r['cpu_ms_per_req'], 3):>11}{r['errors']:>5}"
                f"{_fmt(r.get('floor_cpu_ratio'), 2, 'x'):>8}  "
                f"{_fmt(r.get('llmrelay_rps_ratio'), 1, 'x'):>14}{_fmt(r.get('llmrelay_cpu_ratio'), 1, 'x'):>7}  {note}"
            )
        return "\n".join(out)

    def targets(self, me: str = "llmrelay") -> list[Json]:
        g = self.get
        out: list[Json] = []

        def target(name: str, value: float | None, ok: Callable[[float], bool], shown: str) -> None:
            out.append(
                {
                    "system": me,
                    "target": name,
                    "value": value,
                    "shown": shown if value is not None else "not measured",
                    "pass": None if value is None else ok(value),
                }
            )

        def ratio(a: float | None, b: float | None) -> float | None:
            return a / b if a is not None and b else None

        cpu = g("native", 10, me, "cpu_ms_per_req")
        target("gateway CPU per request <= 0.4 ms (native, c=10)", cpu, lambda v: v <= 0.4, f"{cpu or 0:.3f} ms")
        for peer, need in (("litellm", 20.0), ("portkey", 2.5)):
            r = ratio(g("native", 10, me, "rps"), g("native", 10, peer, "rps"))
            target(f"req/s at c=10 >= {need:g}x {peer} (native)", r, lambda v, n=need: v >= n, f"{r or 0:.1f}x")
        p, d = g("native", 1, me, "p50_ms"), g("native", 1, "direct", "p50_ms")
        ovh = p - d if p is not None and d is not None else None
        target("overhead at c=1 <= 0.5 ms p50 (native)", ovh, lambda v: v <= 0.5, f"{ovh or 0:.2f} ms")
        r = ratio(g("native-stream", 10, me, "rps"), g("native-stream", 10, "litellm", "rps"))
        target("streaming req/s at c=10 >= 10x litellm", r, lambda v: v >= 10, f"{r or 0:.1f}x")
        for sname, need in (("native", 1.3), ("native-stream", 2.0), ("anthropic-stream", 3.0)):
            r = ratio(g(sname, 10, me, "cpu_ms_per_req"), g(sname, 10, "floor", "cpu_ms_per_req"))
            target(
                f"CPU per request <= {need:g}x the floor ({sname}, c=10)", r, lambda v, n=need: v <= n, f"{r or 0:.2f}x"
            )
        r = ratio(g("anthropic", 10, me, "cpu_ms_per_req"), cpu)
        target("Anthropic-translated CPU <= 1.5x native (c=10)", r, lambda v: v <= 1.5, f"{r or 0:.2f}x")
        r = ratio(g("anthropic-stream", 10, me, "cpu_ms_per_req"), g("native-stream", 10, me, "cpu_ms_per_req"))
        target("Anthropic-translated stream CPU <= 1.5x native stream (c=10)", r, lambda v: v <= 1.5, f"{r or 0:.2f}x")
        if me == "llmrelay":
            for sname in ("native", "chain"):
                r = ratio(g(sname, 10, "llmrelay-pg", "cpu_ms_per_req"), g(sname, 10, me, "cpu_ms_per_req"))
                target(f"Postgres store CPU <= 1.3x SQLite ({sname}, c=10)", r, lambda v: v <= 1.3, f"{r or 0:.2f}x")
            key, plain = g("native", 10, "llmrelay-vkey", "cpu_ms_per_req"), cpu
            added = key - plain if key is not None and plain is not None else None
            shown = f"{added or 0:+.3f} ms"
            target("a virtual key adds <= 0.05 ms CPU (native, c=10)", added, lambda v: v <= 0.05, shown)
        rss = self.rss.get(me, {}).get("max_worker_mb")
        target("RSS <= 120 MB per worker", rss, lambda v: v <= 120, f"{rss or 0:.0f} MB")
        cold = self.cold.get(me)
        med = statistics.median(cold) if cold else None
        target(f"cold start < 1 s ({CORES} workers)", med, lambda v: v < 1, f"{med or 0:.2f} s")
        cold = self.cold.get(f"{me} (1 worker)")
        med = statistics.median(cold) if cold else None
        target("cold start < 1 s (1 worker)", med, lambda v: v < 1, f"{med or 0:.2f} s")
        return out

    def report(self) -> None:
        rows = self.rows()
        lines = [
            f"llmrelay gateway benchmark  {self.meta.get('date', '')}",
            "  " + ", ".join(f"{k}={v}" for k, v in self.meta.items() if k not in ("date", "workers", "idle_cpu_pct")),
            "  workers: " + ", ".join(f"{k}={v}" for k, v in self.meta.get("workers", {}).items()),
            "  idle CPU (%, no load): " + ", ".join(f"{k}={v}" for k, v in self.meta.get("idle_cpu_pct", {}).items()),
            f"  median of {self.args.trials} trials x {self.args.duration:g}s per cell, wrk -t1, trials interleaved",
            "",
            self.table(rows),
            "",
            "x floor = this system's CPU per request / the floor's (bench/floor.py: bytes forwarded, nothing parsed)",
            "llmrelay x rps = llmrelay req/s / that system's; x CPU = that system's CPU per request / llmrelay's"
            " (both > 1: llmrelay ahead)",
        ]
        if "background" in self.args.scenarios:
            lines.append(
                "background: req/s = completed create-then-poll sequences per second, CPU ms per sequence;"
                " p50/p99 per HTTP request"
            )
        lines += [
            "",
            "RSS after load (VmRSS):",
        ]
        for name, r in self.rss.items():
            sup = f", supervisor {r['supervisor_mb']} MB" if r["supervisor_mb"] else ""
            lines.append(f"  {name:<10} per worker {r['per_worker_mb']} MB{sup}")
        if self.meta.get("llmrelay_server") not in (None, server_libs()):
            lines.append(f"WARNING: uvicorn/uvloop/httptools changed during the run: now {server_libs()}")
        lines.append("Cold start (launch to first 200 on a POST), median:")
        for name, samples in self.cold.items():
            if samples:
                lines.append(
                    f"  {name:<22} {statistics.median(samples):6.2f} s   ({', '.join(f'{x:.2f}' for x in samples)})"
                )
        if self.import_time.get("output"):
            lines.append("Import time (bench/import_time.py):")
            lines += ["  " + x for x in self.import_time["output"].splitlines()]
        targets: list[Json] = []
        for me in [n for n in self.args.systems if n.startswith("llmrelay")]:
            lines.append(f"Targets ({me}):")
            for t in self.targets(me):
                targets.append(t)
                verdict = {True: "PASS", False: "FAIL", None: "----"}[t["pass"]]
                lines.append(f"  [{verdict}] {t['target']:<62} {t['shown']}")
        print("\n".join(lines), flush=True)

        RESULTS.mkdir(exist_ok=True)
        out = {
            "meta": self.meta,
            "args": {k: v for k, v in vars(self.args).items() if k != "func"},
            "rows": rows,
            "cells": [
                {**{k: v for k, v in asdict(c).items() if k != "trials"}, "trials": [asdict(t) for t in c.trials]}
                for c in self.cells.values()
            ],
            "rss": self.rss,
            "cold_start_s": self.cold,
            "import_time": self.import_time,
            "targets": targets,
            "table": "\n".join(lines),
        }
        path = Path(self.args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=2) + "\n")
        log(f"results written to {path}")


def _fmt(v: float | None, digits: int, suffix: str = "") -> str:
    return "-" if v is None or v != v else f"{v:.{digits}f}{suffix}"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"
