"""The nginx upstream answering canned bodies."""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path

from canned import BG_PREFIX, background_bodies, canned
from common import HOST
from installs import nginx_binary
from procs import Proc, free_port, spawn


def _nginx_string(s: str) -> str:
    if any(c in s for c in "'\\$"):
        raise ValueError("canned bodies must not hold quotes, backslashes or $")
    return "'" + s.replace("\n", "\\n") + "'"


def _nginx_location(path: str, ctype: str, body: str, index: int) -> str:
    """A `return 200` of `body`. nginx caps one config token at 4 KB, so a longer body is set in
    pieces of variables and returned as their concatenation."""
    pieces = [body[i : i + 1500] for i in range(0, len(body), 1500)]
    if len(pieces) == 1:
        return f"location = {path} {{ default_type {ctype}; return 200 {_nginx_string(body)}; }}"
    names = [f"$b{index}_{i}" for i in range(len(pieces))]
    sets = "".join(f"        set {n} {_nginx_string(p)};\n" for n, p in zip(names, pieces, strict=True))
    return f'location = {path} {{\n        default_type {ctype};\n{sets}        return 200 "{"".join(names)}";\n    }}'


# Share of background polls answered `in_progress`: a create-then-poll sequence then takes
# 1 / (1 - share) polls on average (2 at 50%), drawn per request from nginx's $request_id.
BG_IN_PROGRESS_PCT = 50


def _background_poll_location() -> str:
    """GET <BG_PREFIX><id>: `in_progress` or `completed`, chosen per request (nginx keeps no state)."""
    bodies = background_bodies()
    pieces = {
        status: [bodies[status][i : i + 1500] for i in range(0, len(bodies[status]), 1500)]
        for status in ("in_progress", "completed")
    }
    sets = "".join(
        f"        set $bg_{status}_{i} {_nginx_string(piece)};\n"
        for status, parts in pieces.items()
        for i, piece in enumerate(parts)
    )

    def joined(status: str) -> str:
        return '"' + "".join(f"$bg_{status}_{i}" for i in range(len(pieces[status]))) + '"'

    return (
        f"location ^~ {BG_PREFIX} {{\n        default_type application/json;\n{sets}"
        f"        if ($bg_in_progress) {{ return 200 {joined('in_progress')}; }}\n"
        f"        return 200 {joined('completed')};\n    }}"
    )


def start_nginx(workdir: Path) -> tuple[Proc, int]:
    port = free_port()
    prefix = workdir / "nginx"
    (prefix / "tmp").mkdir(parents=True)
    locations = "\n".join(
        "    " + _nginx_location(path, ctype, body, i) for i, (path, (ctype, body)) in enumerate(canned().items())
    )
    conf = f"""{nginx_head(prefix)}
    client_body_buffer_size 64k;
    client_body_temp_path {prefix}/tmp;
    split_clients "${{request_id}}" $bg_in_progress {{ {BG_IN_PROGRESS_PCT}% 1; * ""; }}
    server {{
        listen {HOST}:{port} backlog=4096;
{locations}
        {_background_poll_location()}
        location / {{ default_type application/json; return 404 '{{"error": "no canned body here"}}'; }}
    }}
}}
"""
    return run_nginx(workdir, "nginx", prefix, conf, port), port


def nginx_head(prefix: Path) -> str:
    """What every nginx of the bench starts with, up to the `http` block's own settings: one
    worker, in the foreground, files under `prefix`, no access log, connections kept."""
    return f"""worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 300s;"""


def run_nginx(workdir: Path, name: str, prefix: Path, conf: str, port: int) -> Proc:
    """nginx on `conf` (written to `prefix`/nginx.conf), once it accepts connections on `port`."""
    (prefix / "nginx.conf").write_text(conf)
    proc = spawn(name, [nginx_binary(), "-p", str(prefix), "-c", str(prefix / "nginx.conf")], workdir)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return proc
        if not proc.alive():
            break
        time.sleep(0.02)
    raise RuntimeError(f"{name} did not start:\n{proc.log_tail()}")
