"""One benchmark run: start the systems, probe the routes, run interleaved trials."""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from background import write_background_lua
from canned import check_canned
from common import BENCH, CORES, HOST, ROOT, Json, log
from installs import _version, ensure_apt, ensure_python_packages, litellm_venv, nginx_binary, portkey_dir, server_libs
from load import Cell, Trial, run_wrk, write_lua
from procs import Proc, cmdline, cpu_seconds, rss_mb, tree
from report import Reporting, _cpu_model, _fmt
from scenarios import SCENARIOS, Route
from systems import SYSTEM_CLASSES, Direct, LLMRelay, System, first_turn, probe
from upstream import start_nginx


@dataclass
class Bench(Reporting):
    args: argparse.Namespace
    workdir: Path
    nginx: Proc | None = None
    nginx_port: int = 0
    systems: dict[str, System] = field(default_factory=dict)
    cells: dict[tuple[str, int, str], Cell] = field(default_factory=dict)
    routes: dict[tuple[str, str], Route] = field(default_factory=dict)
    cold: dict[str, list[float]] = field(default_factory=dict)
    rss: dict[str, Json] = field(default_factory=dict)
    import_time: Json = field(default_factory=dict)
    meta: Json = field(default_factory=dict)

    def setup(self) -> None:
        ensure_apt({"wrk": "wrk", nginx_binary(): "nginx"})
        ensure_python_packages(["openai", "anthropic"])
        self.nginx, self.nginx_port = start_nginx(self.workdir)
        log(f"nginx upstream on :{self.nginx_port}; checking canned bodies against the openai/anthropic SDKs")
        check_canned(f"http://{HOST}:{self.nginx_port}")
        self.systems["direct"] = Direct(self.workdir, self.nginx_port)
        self.systems["direct"].port = self.nginx_port
        for name in self.args.systems:
            system = SYSTEM_CLASSES[name](self.workdir, self.nginx_port)
            log(f"starting {name} ({system.workers} worker{'s' if system.workers > 1 else ''})")
            try:
                self.cold.setdefault(name, []).append(system.start())
            except Exception as exc:
                log(f"{name} could not start: {exc}")
                system.notes.append(f"could not start: {str(exc).splitlines()[0]}")
                self.cells_skip(name, f"could not start: {str(exc).splitlines()[0]}")
                system.stop()
                continue
            self.systems[name] = system
        self.meta = self.versions()
        self.measure_idle()

    def measure_idle(self, seconds: float = 3.0) -> None:
        """CPU the gateways burn with no load: it runs beside every other system's trials."""
        procs = {n: s.proc for n, s in self.systems.items() if s.proc}
        before = {n: cpu_seconds(p.pid) for n, p in procs.items()}
        time.sleep(seconds)
        self.meta["idle_cpu_pct"] = {
            n: round(100 * (cpu_seconds(p.pid) - before[n]) / seconds, 1) for n, p in procs.items()
        }

    def cells_skip(self, system: str, why: str) -> None:
        for s in self.args.scenarios:
            for c in self.args.concurrency:
                self.cells[(s, c, system)] = Cell(s, c, system, skipped=why)

    def versions(self) -> Json:
        git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
        meta: Json = {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "cores": CORES,
            "cpu": _cpu_model(),
            "python": platform.python_version(),
            "llmrelay_commit": git.stdout.strip() or "?",
            "nginx": _version([nginx_binary(), "-v"]),
            "wrk": _version(["wrk", "-v"]),
            "duration_s": self.args.duration,
            "trials": self.args.trials,
            "workers": {n: s.workers for n, s in self.systems.items() if n != "direct"},
            "llmrelay_server": server_libs(),
        }
        if "litellm" in self.systems:
            meta["litellm"] = _version([str(litellm_venv() / "bin" / "pip"), "show", "litellm"], r"(?<=Version: )\S+")
        if "portkey" in self.systems:
            pkg = portkey_dir() / "node_modules" / "@portkey-ai" / "gateway" / "package.json"
            meta["portkey_gateway"] = json.loads(pkg.read_text())["version"]
            meta["node"] = _version(["node", "--version"])
        return meta

    def prepare_routes(self) -> None:
        """Probe every (scenario, system) once; a failing one is reported, not measured."""
        previous: dict[str, str] = {}
        for sname in self.args.scenarios:
            s = SCENARIOS[sname]
            for name, system in self.systems.items():
                if (sname, self.args.concurrency[0], name) in self.cells:
                    continue
                prev = None
                key = f"{sname}/{name}"
                if s.chain and isinstance(system, LLMRelay):
                    prev = previous.get(key) or first_turn(system, s)
                    previous[key] = prev
                route = system.route(s, prev) if name != "direct" else system.route(s)
                why = "not offered" if route is None else probe(system, system.port, route, s)
                if why:
                    log(f"{sname} / {name}: skipped: {why}")
                    for c in self.args.concurrency:
                        self.cells[(sname, c, name)] = Cell(sname, c, name, skipped=why)
                    continue
                assert route is not None
                self.routes[(sname, name)] = route
                (write_background_lua if s.background else write_lua)(self.workdir / f"{sname}-{name}.lua", route)
                for c in self.args.concurrency:
                    self.cells[(sname, c, name)] = Cell(sname, c, name, via=route.via)

    def measure(self) -> None:
        names = list(self.systems)
        order = [(s, c) for s in self.args.scenarios for c in self.args.concurrency]
        total = sum(1 for s, c in order for n in names if (s, n) in self.routes) * self.args.trials
        done = 0
        started = time.monotonic()
        for sname, c in order:
            live = [n for n in names if (sname, n) in self.routes]
            for n in live:  # warm pools, caches and JITs; not recorded
                self.trial(sname, c, n, warmup=True)
            for t in range(self.args.trials):
                # Interleaved, and rotated so no system always runs right after another.
                rot = t % len(live) if live else 0
                for n in live[rot:] + live[:rot]:
                    trial = self.trial(sname, c, n)
                    done += 1
                    if trial:
                        self.cells[(sname, c, n)].trials.append(trial)
                        left = (time.monotonic() - started) / done * (total - done)
                        log(
                            f"{sname:<16} c={c:<3} {n:<9} trial {t + 1}: {trial.rps:9.1f} req/s  "
                            f"p50 {trial.p50_ms:7.2f} ms  p99 {trial.p99_ms:7.2f} ms  "
                            f"cpu {_fmt(trial.cpu_ms_per_req, 3)} ms/req  err {trial.errors}  "
                            f"[{done}/{total}, ~{left / 60:.1f} min left]"
                        )

    def trial(self, sname: str, c: int, name: str, warmup: bool = False) -> Trial | None:
        system = self.systems[name]
        route = self.routes[(sname, name)]
        assert self.nginx is not None
        gateway = system.proc.pid if system.proc else None
        if system.proc and not system.proc.alive():
            self.cells[(sname, c, name)].skipped = f"process died: {system.proc.log_tail(3)}"
            return None
        duration = 1.0 if warmup else self.args.duration
        try:
            return run_wrk(
                f"http://{HOST}:{system.port}{route.path}",
                self.workdir / f"{sname}-{name}.lua",
                c,
                duration,
                gateway,
                self.nginx.pid,
            )
        except Exception as exc:
            log(f"{sname} c={c} {name}: {exc}")
            cell = self.cells[(sname, c, name)]
            cell.skipped = cell.skipped or f"load failed: {' '.join(str(exc).split())[:120]}"
            return None

    def measure_rss(self) -> None:
        for name, system in self.systems.items():
            if not system.proc:
                continue
            procs = [p for p in tree(system.proc.pid) if "resource_tracker" not in cmdline(p)]
            workers = procs[1:] or procs  # a supervisor's children serve; a lone process serves itself
            self.rss[name] = {
                "per_worker_mb": [round(rss_mb(p), 1) for p in workers],
                "supervisor_mb": round(rss_mb(procs[0]), 1) if len(procs) > 1 else None,
                "max_worker_mb": round(max(rss_mb(p) for p in workers), 1),
            }

    def measure_cold_starts(self) -> None:
        runs = self.args.cold_runs
        plans: list[tuple[str, int | None]] = [(n, None) for n in self.systems if n != "direct"]
        plans += [(n, 1) for n in self.systems if n.startswith("llmrelay") and CORES > 1]
        for name, workers in plans:
            label = name if workers is None else f"{name} (1 worker)"
            samples = self.cold.get(label, [])[:1]  # the first launch counts as one sample
            for _ in range(runs - len(samples)):
                extra = type(self.systems[name])(self.workdir, self.nginx_port)
                try:
                    samples.append(extra.start(workers))
                except Exception as exc:
                    log(f"cold start of {label} failed: {exc}")
                finally:
                    extra.stop()
            self.cold[label] = samples
            log(f"cold start {label}: " + ", ".join(f"{x:.2f}s" for x in samples))

    def measure_import(self) -> None:
        out = subprocess.run(
            [sys.executable, str(BENCH / "import_time.py"), "--runs", str(self.args.import_runs)],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        self.import_time = {"output": out.stdout.strip()}
        for line in out.stdout.splitlines():
            if m := re.match(r"(import \w+|python -c pass)\s+([\d.]+) ms", line):
                self.import_time[m.group(1)] = float(m.group(2))

    def teardown(self) -> None:
        for system in self.systems.values():
            system.stop()
        if self.nginx:
            self.nginx.stop()
