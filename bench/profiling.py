"""Profile: py-spy on one llmrelay worker under load."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from background import write_background_lua
from common import HOST, RESULTS, ROOT, log
from installs import ensure_apt, nginx_binary
from load import run_wrk, write_lua
from scenarios import SCENARIOS
from systems import SYSTEM_CLASSES, first_turn, probe
from upstream import start_nginx


def _frame(raw: str) -> str:
    """py-spy's `function (path:line)` as `path:function`, with install prefixes cut."""
    m = re.match(r"(.*) \((.*?)(?::\d+)?\)$", raw.strip())
    if not m:
        return raw.strip()
    fn, path = m.groups()
    for marker in ("site-packages/", "lib/python3.11/", "lib/python3.12/", "lib/python3.13/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    path = path.replace(str(ROOT) + "/", "")
    return f"{path}:{fn}"


def summarize_collapsed(text: str, top: int) -> str:
    self_c: Counter[str] = Counter()
    cum_c: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame(f) for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += n
        self_c[frames[-1]] += n
        for f in set(frames):
            cum_c[f] += n
    if not total:
        return "no samples"
    out = [f"{total} samples of the busy worker (idle time in the event loop's poll not sampled)", ""]
    own = Counter({f: n for f, n in cum_c.items() if f.startswith("llmrelay/")})
    for title, counter, n in (
        (f"Top {top} by own time (self)", self_c, top),
        (f"Top {top} by cumulative time (frame anywhere on the stack)", cum_c, top),
        ("llmrelay's own functions by cumulative time", own, 15),
    ):
        out.append(f"{title}:")
        out.append(f"  {'self %':>7} {'cum %':>7}  frame")
        for frame, _ in counter.most_common(n):
            out.append(f"  {100 * self_c[frame] / total:7.1f} {100 * cum_c[frame] / total:7.1f}  {frame}")
        out.append("")
    return "\n".join(out)


def profile(args: argparse.Namespace, workdir: Path) -> None:
    ensure_apt({"wrk": "wrk", nginx_binary(): "nginx"})
    if not shutil.which("py-spy"):
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"], check=True)
    nginx, port = start_nginx(workdir)
    relay = SYSTEM_CLASSES[args.profile_system](workdir, port)
    try:
        relay.start(workers=1)  # one worker: uvicorn serves in the launched process itself
        assert relay.proc is not None
        s = SCENARIOS[args.profile_scenario]
        route = relay.route(s, first_turn(relay, s) if s.chain else None)
        assert route is not None
        if why := probe(relay, relay.port, route, s):
            raise SystemExit(f"profile scenario fails: {why}")
        lua = workdir / "profile.lua"
        (write_background_lua if s.background else write_lua)(lua, route)
        url = f"http://{HOST}:{relay.port}{route.path}"
        run_wrk(url, lua, args.profile_c, 2, relay.proc.pid, nginx.pid)  # warm-up
        seconds = args.profile_seconds
        load = subprocess.Popen(
            ["wrk", "-t1", f"-c{args.profile_c}", f"-d{seconds + 3}s", "--latency", "-s", str(lua), url],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(1)
        raw = workdir / "profile.collapsed"
        spy = ["py-spy", "record", "--pid", str(relay.proc.pid), "--duration", str(seconds), "--rate", "250"]
        spy.append("--full-filenames")  # py-spy's short names drop the package of some modules
        if args.profile_native:
            spy.append("--native")  # C frames (uvloop, sqlite3, the socket calls) under the Python ones
        subprocess.run([*spy, "--format", "raw", "-o", str(raw)], check=True, capture_output=True)
        wrk_out, _ = load.communicate()
        rps = re.search(r"Requests/sec:\s+([\d.]+)", wrk_out or "")
        summary = summarize_collapsed(raw.read_text(), args.profile_top)
        head = (
            f"py-spy profile{' (with C frames)' if args.profile_native else ''}: {relay.name}, 1 worker, "
            f"scenario {s.name}, c={args.profile_c}, {seconds}s at 250 Hz"
            f" (req/s under the profiler: {rps.group(1) if rps else '?'})"
        )
        text = head + "\n\n" + summary
        print(text)
        RESULTS.mkdir(exist_ok=True)
        stem = RESULTS / f"profile-{relay.name}-{s.name}-c{args.profile_c}{'-cframes' if args.profile_native else ''}"
        stem.with_suffix(".txt").write_text(text + "\n")
        shutil.copy(raw, stem.with_suffix(".collapsed"))
        log(f"profile written to {stem}.txt (+ .collapsed stacks)")
    finally:
        relay.stop()
        nginx.stop()
