"""Scale-out (`bench/run --scale-out`): two llmrelay instances behind nginx against one.

Every instance runs 1 worker with its store on Postgres (`LLMRELAY_BENCH_PG`) and Redis
(`LLMRELAY_BENCH_REDIS`, default redis://127.0.0.1:6379/9) in router_settings, so they share
state as a deployment's instances do. Three setups, trials interleaved (rotated) as runner.py
does, median reported:

- `2 x 1w + nginx`: instances A and B behind an nginx load balancer (least_conn, keep-alive
  upstream connections, as deploy/nginx.conf);
- `1 x 1w + nginx`: A alone behind a second nginx of the same config;
- `1 x 1w direct`: A itself;
- `2 x 1w + nginx` at twice the connections: each instance then gets the load the single one
  gets (at the same c each of two runs at c/2, and an instance's CPU per request rises as its
  concurrency falls: fewer requests per event-loop wake-up).

On a 2-core box req/s per core cannot be read off (wrk, both nginx and the instances share the
cores), so besides req/s the table shows the gateway's CPU per request (the instances' process
trees, from /proc) and the ratio two-instances / one-instance behind nginx. The target, req/s
per core within 10% of one instance, is that ratio <= 1.10 (checked at both loads).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from background import write_background_lua
from common import CORES, HOST, Json, log
from installs import ensure_apt, nginx_binary
from load import Cell, Trial, run_wrk, write_lua
from procs import Proc, cpu_seconds, free_port
from report import _fmt
from scenarios import SCENARIOS, Route
from systems import PG_URL, LLMRelayPostgres, first_turn, probe
from upstream import nginx_head, run_nginx, start_nginx

REDIS_URL = os.environ.get("LLMRELAY_BENCH_REDIS", "redis://127.0.0.1:6379/9")
DEFAULT_SCENARIOS = ["native", "native-stream"]
TARGET = 1.10  # two instances' CPU per request over one's


class SharedInstance(LLMRelayPostgres):
    """llmrelay on Postgres with Redis named in router_settings: the state every instance shares."""

    name = "llmrelay-shared"
    workers = 1

    def config(self, store: Path) -> Json:
        cfg = super().config(store)
        cfg["router_settings"] = {"redis_url": REDIS_URL}
        return cfg


def lb_conf(prefix: Path, port: int, backends: list[int]) -> str:
    """An nginx load balancer as deploy/nginx.conf: least_conn, keep-alive upstream connections,
    nothing buffered (streams go out as they come)."""
    servers = "".join(f"        server {HOST}:{p};\n" for p in backends)
    return f"""{nginx_head(prefix)}
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    upstream llmrelay {{
        least_conn;
{servers}        keepalive 64;
        keepalive_requests 10000000;
        keepalive_timeout 300s;
    }}
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ""      "";
    }}
    server {{
        listen {HOST}:{port} backlog=4096;
        client_max_body_size 32m;
        location / {{
            proxy_pass http://llmrelay;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 600s;
            proxy_send_timeout 600s;
            proxy_connect_timeout 5s;
        }}
    }}
}}
"""


def start_lb(workdir: Path, name: str, backends: list[int]) -> tuple[Proc, int]:
    port = free_port()
    prefix = workdir / name
    (prefix / "tmp").mkdir(parents=True)
    return run_nginx(workdir, name, prefix, lb_conf(prefix, port, backends), port), port


@dataclass
class Setup:
    name: str
    port: int  # where wrk sends
    instances: list[Proc]
    lb: Proc | None = None
    c: int = 0  # wrk connections

    @property
    def key(self) -> str:
        return f"{self.name} c={self.c}"

    lb_cpu: dict[str, list[float]] = field(default_factory=dict)  # scenario -> LB CPU ms/req per trial
    share: dict[str, list[float]] = field(default_factory=dict)  # scenario -> instance A's share of CPU


@dataclass
class ScaleOut:
    args: argparse.Namespace
    workdir: Path
    procs: list[Proc] = field(default_factory=list)
    instances: list[SharedInstance] = field(default_factory=list)
    setups: list[Setup] = field(default_factory=list)
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)
    routes: dict[str, Route] = field(default_factory=dict)
    nginx: Proc | None = None
    shared: Json = field(default_factory=dict)  # the shared services' side: rows, commands, connections
    served: int = 0  # requests (sequences) answered in the current scenario, warm-ups included

    def setup(self) -> None:
        ensure_apt({"wrk": "wrk", nginx_binary(): "nginx"})
        self.nginx, upstream_port = start_nginx(self.workdir)
        self.procs.append(self.nginx)
        log(f"nginx upstream on :{upstream_port}; store {PG_URL}, redis {REDIS_URL}")
        for _ in range(2):
            inst = SharedInstance(self.workdir, upstream_port)
            self.instances.append(inst)
            inst.start(1)
            assert inst.proc is not None
            self.procs.append(inst.proc)
        a, b = (i.proc for i in self.instances)
        assert a is not None and b is not None
        lb2, lb2_port = start_lb(self.workdir, "nginx-lb2", [i.port for i in self.instances])
        lb1, lb1_port = start_lb(self.workdir, "nginx-lb1", [self.instances[0].port])
        self.procs += [lb2, lb1]
        self.setups = [
            Setup("2 x 1w + nginx", lb2_port, [a, b], lb2, c=self.args.c),
            Setup("1 x 1w + nginx", lb1_port, [a], lb1, c=self.args.c),
            Setup("1 x 1w direct", self.instances[0].port, [a], c=self.args.c),
            # The same load per instance as the single one gets: at c each of two runs at c/2,
            # and an instance's CPU per request rises as its concurrency falls.
            Setup("2 x 1w + nginx", lb2_port, [a, b], lb2, c=2 * self.args.c),
        ]
        log(
            f"instances A :{self.instances[0].port}, B :{self.instances[1].port}; "
            f"nginx LB :{lb2_port} (A+B), :{lb1_port} (A)"
        )

    def prepare(self) -> None:
        first = self.instances[0]
        for sname in self.args.scenarios:
            s = SCENARIOS[sname]
            prev = first_turn(first, s) if s.chain else None  # in Postgres: every instance reads it
            route = first.route(s, prev)
            assert route is not None
            self.routes[sname] = route
            lua = self.workdir / f"scale-{sname}.lua"
            (write_background_lua if s.background else write_lua)(lua, route)
            for st in self.setups:
                why = probe(first, st.port, route, s)
                self.cells[(sname, st.key)] = Cell(sname, st.c, st.name, skipped=why or "")
                if why:
                    log(f"{sname} / {st.key}: skipped: {why}")

    def trial(self, sname: str, st: Setup, duration: float) -> Trial | None:
        assert self.nginx is not None
        if not all(p.alive() for p in st.instances):
            self.cells[(sname, st.key)].skipped = "an instance died"
            return None
        pids = [p.pid for p in st.instances]
        a0, lb0 = cpu_seconds(pids[0]), cpu_seconds(st.lb.pid) if st.lb else 0.0
        g0 = sum(cpu_seconds(p) for p in pids)
        url = f"http://{HOST}:{st.port}{self.routes[sname].path}"
        r0 = redis_commands()
        try:
            trial = run_wrk(url, self.workdir / f"scale-{sname}.lua", st.c, duration, pids, self.nginx.pid)
        except Exception as exc:
            log(f"{sname} {st.key}: {exc}")
            return None
        r1 = redis_commands()
        self.served += trial.requests
        if r0 is not None and r1 is not None and trial.requests:
            self.shared.setdefault("redis_cmds_per_req", {}).setdefault(f"{sname}/{st.key}", []).append(
                (r1 - r0 - 1) / trial.requests  # less the INFO that read r1
            )
        a1, lb1 = cpu_seconds(pids[0]), cpu_seconds(st.lb.pid) if st.lb else 0.0
        g1 = sum(cpu_seconds(p) for p in pids)
        if trial.requests:
            st.lb_cpu.setdefault(sname, []).append((lb1 - lb0) * 1000 / trial.requests if st.lb else float("nan"))
            st.share.setdefault(sname, []).append((a1 - a0) / (g1 - g0) if g1 > g0 else float("nan"))
        return trial

    def measure(self) -> None:
        for sname in self.args.scenarios:
            live = [st for st in self.setups if not self.cells[(sname, st.key)].skipped]
            rows0, self.served = store_rows(), 0
            for st in live:
                self.trial(sname, st, 1.0)  # warm-up, not recorded
            for t in range(self.args.trials):
                rot = t % len(live) if live else 0
                for st in live[rot:] + live[:rot]:
                    trial = self.trial(sname, st, self.args.duration)
                    if trial:
                        self.cells[(sname, st.key)].trials.append(trial)
                        log(
                            f"{sname:<14} {st.key:<20} trial {t + 1}: {trial.rps:8.1f} req/s  p50 "
                            f"{trial.p50_ms:6.2f} ms  cpu {_fmt(trial.cpu_ms_per_req, 3)} ms/req  err {trial.errors}"
                        )
            time.sleep(0.5)  # the spend log flushes every 0.2 s
            rows1 = store_rows()
            if self.served and rows0 and rows1:
                self.shared.setdefault("store_rows_per_req", {})[sname] = {
                    table: (rows1[table] - rows0[table]) / self.served for table in rows1
                }
        self.shared["postgres_connections"] = pg_connections()
        self.shared["redis_clients"] = redis_clients()

    def rows(self) -> list[Json]:
        rows = []
        for sname in self.args.scenarios:
            one = self.cells[(sname, self.setups[1].key)]
            one_cpu, one_rps = one.median("cpu_ms_per_req"), one.median("rps")
            for st in self.setups:
                cell = self.cells[(sname, st.key)]
                row: Json = {"scenario": sname, "c": st.c, "setup": st.name, "skipped": cell.skipped}
                if cell.trials:
                    cpu, rps = cell.median("cpu_ms_per_req"), cell.median("rps")
                    row |= {
                        "rps": rps,
                        "p50_ms": cell.median("p50_ms"),
                        "p99_ms": cell.median("p99_ms"),
                        "cpu_ms_per_req": cpu,
                        "lb_cpu_ms_per_req": _median(st.lb_cpu.get(sname)),
                        "instance_a_cpu_share": _median(st.share.get(sname)) if len(st.instances) > 1 else None,
                        "errors": sum(t.errors for t in cell.trials),
                        "cpu_ratio": cpu / one_cpu if cpu and one_cpu else None,
                        "rps_ratio": rps / one_rps if rps and one_rps else None,
                        "polls_per_seq": cell.median("polls_per_seq"),
                    }
                rows.append(row)
        return rows

    def report(self) -> None:
        rows = self.rows()
        head = (
            f"{'scenario':<15}{'c':>3}  {'setup':<16}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'CPU ms/req':>11}"
            f"{'LB ms/req':>10}{'A share':>8}{'err':>5}{'x CPU':>7}{'x rps':>7}"
        )
        lines = [
            f"llmrelay scale-out  {time.strftime('%Y-%m-%d %H:%M:%S %z')}  ({CORES} cores)",
            f"  instances: 1 worker each, store {_safe(PG_URL)}, router_settings.redis_url {REDIS_URL}",
            f"  median of {self.args.trials} trials x {self.args.duration:g}s, wrk -t1, interleaved",
            "",
            head,
            "-" * len(head),
        ]
        prev = None
        for r in rows:
            if prev and r["scenario"] != prev:
                lines.append("")
            prev = r["scenario"]
            if "rps" not in r:
                lines.append(f"{r['scenario']:<15}{r['c']:>3}  {r['setup']:<16}{'-':>8}  n/a: {r['skipped'][:90]}")
                continue
            share = r["instance_a_cpu_share"]
            lines.append(
                f"{r['scenario']:<15}{r['c']:>3}  {r['setup']:<16}"
                f"{r['rps']:>8.0f}{r['p50_ms']:>8.2f}{r['p99_ms']:>8.2f}"
                f"{_fmt(r['cpu_ms_per_req'], 3):>11}{_fmt(r['lb_cpu_ms_per_req'], 3):>10}"
                f"{_fmt(None if share is None else 100 * share, 0, '%'):>8}{r['errors']:>5}"
                f"{_fmt(r['cpu_ratio'], 2, 'x'):>7}{_fmt(r['rps_ratio'], 2, 'x'):>7}"
                + (f"  per sequence: 1 create + {r['polls_per_seq']:.2f} polls" if r.get("polls_per_seq") else "")
            )
        lines += [
            "",
            "CPU ms/req: the instances' process trees (utime+stime from /proc) over the requests; Postgres, Redis",
            "and nginx not counted. LB ms/req: the load-balancing nginx's own. A share: instance A's part of the",
            "two instances' CPU. x CPU, x rps: over `1 x 1w + nginx` in the same scenario.",
            "",
        ]
        for sname, per in self.shared.get("store_rows_per_req", {}).items():
            lines.append(
                f"Postgres rows written per request ({sname}): " + ", ".join(f"{k} {v:.2f}" for k, v in per.items())
            )
        redis_per: dict[str, list[float]] = {}
        for key, values in self.shared.get("redis_cmds_per_req", {}).items():
            redis_per.setdefault(key.split("/")[0], []).extend(values)
        if redis_per:
            lines.append(
                "Redis commands per request (server-wide INFO delta, median of the trials): "
                + ", ".join(f"{k} {_fmt(_median(v), 2)}" for k, v in redis_per.items())
            )
        lines.append(
            f"Connections after the load: Postgres {self.shared.get('postgres_connections')} "
            f"(both instances), Redis {self.shared.get('redis_clients')} (db of {REDIS_URL})"
        )
        lines += ["", "Target (req/s per core within 10% of one instance => CPU per request within 10%):"]
        targets = []
        for r in rows:
            if r["setup"] == self.setups[0].name:
                v = r.get("cpu_ratio")
                ok = None if v is None else v <= TARGET
                load = "the same total load" if r["c"] == self.args.c else "the same load per instance"
                targets.append({"scenario": r["scenario"], "c": r["c"], "cpu_ratio": v, "pass": ok})
                verdict = {True: "PASS", False: "FAIL", None: "----"}[ok]
                lines.append(
                    f"  [{verdict}] {r['scenario']}: 2 instances (c={r['c']}, {load}) / 1 (c={self.args.c}),"
                    f" CPU per request {_fmt(v, 2, 'x')}"
                )
        print("\n".join(lines), flush=True)
        path = Path(self.args.out).with_name("scale-out.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        cells = [
            {**{k: v for k, v in asdict(c).items() if k != "trials"}, "trials": [asdict(t) for t in c.trials]}
            for c in self.cells.values()
        ]
        out = {"rows": rows, "cells": cells, "shared": self.shared, "targets": targets, "table": "\n".join(lines)}
        path.write_text(json.dumps(out, indent=2) + "\n")
        log(f"results written to {path}")

    def teardown(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def run(args: argparse.Namespace, workdir: Path) -> None:
    args.c = args.concurrency[0] if args.concurrency_given else 10
    if not args.scenarios_given:
        args.scenarios = DEFAULT_SCENARIOS
    bench = ScaleOut(args, workdir)
    try:
        bench.setup()
        bench.prepare()
        bench.measure()
    except KeyboardInterrupt:
        log("interrupted: reporting what was measured")
    finally:
        bench.teardown()
    bench.report()


def redis_commands() -> int | None:
    """Commands the Redis server processed so far (server-wide: other clients count too)."""
    try:
        import redis

        return int(redis.Redis.from_url(REDIS_URL).info("stats")["total_commands_processed"])
    except Exception:
        return None


def redis_clients() -> int | None:
    """Clients connected on our Redis db, less the one asking."""
    try:
        import redis

        db = redis.Redis.from_url(REDIS_URL)
        mine = db.connection_pool.connection_kwargs.get("db", 0)
        return sum(1 for c in db.client_list() if int(c.get("db", -1)) == mine) - 1
    except Exception:
        return None


def _psql(sql: str) -> str | None:
    out = subprocess.run(["psql", PG_URL, "-Atc", sql], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def store_rows() -> dict[str, int] | None:
    """Rows in the store's response and spend tables (exact counts: pg_stat lags by seconds)."""
    out = _psql("SELECT (SELECT count(*) FROM llmrelay_responses), (SELECT count(*) FROM llmrelay_spend_logs)")
    if not out:
        return None
    responses, spend = (int(x) for x in out.split("|"))
    return {"responses": responses, "spend_logs": spend}


def pg_connections() -> int | None:
    """Connections to the store's database, less the one asking."""
    out = _psql("SELECT count(*) - 1 FROM pg_stat_activity WHERE datname = current_database()")
    return int(out) if out else None


def _median(values: list[float] | None) -> float | None:
    values = [v for v in values or [] if v == v]  # NaN: no LB, or no CPU counted
    return statistics.median(values) if values else None


def _safe(url: str) -> str:
    """The store URL without a password."""
    scheme, _, rest = url.partition("://")
    cred, at, host = rest.rpartition("@")
    return f"{scheme}://{cred.split(':')[0]}{at}{host}" if at else url
