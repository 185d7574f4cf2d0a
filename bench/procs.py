"""Processes, ports and /proc accounting."""

from __future__ import annotations

import compileall
import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from canned import _dumps
from common import CLK_TCK, HOST, Json


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rsplit(")", 1)[1].split()  # fields from `state` on; comm may hold spaces


def tree(root: int) -> list[int]:
    """`root` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))):
            children.setdefault(int(st[1]), []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def cpu_seconds(root: int) -> float:
    """utime + stime of a process tree, in seconds."""
    ticks = 0
    for pid in tree(root):
        if st := _stat(pid):
            ticks += int(st[11]) + int(st[12])
    return ticks / CLK_TCK


def rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    return ""


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        if self.popen.poll() is not None:
            return
        # Each process was started in its own session: its group holds exactly its tree.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)

    def log_tail(self, n: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return ""


def bytecode(package: Path) -> None:
    """Compile a package's modules, as `pip install` does: where PYTHONDONTWRITEBYTECODE is set,
    a checkout's modules would otherwise be compiled on every start, and cold starts and import
    times would measure the compiler."""
    compileall.compile_dir(package, quiet=1)


def spawn(
    name: str, argv: list[str], workdir: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Proc:
    log_path = workdir / f"{name}.log"
    out = log_path.open("ab")
    popen = subprocess.Popen(
        argv,
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        start_new_session=True,
    )
    out.close()
    return Proc(name, popen, log_path)


def post(port: int, path: str, headers: dict[str, str], body: Json, timeout: float = 30) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("POST", path, _dumps(body).encode(), {"content-type": "application/json", **headers})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def get(port: int, path: str, headers: dict[str, str], timeout: float = 30) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_for_200(proc: Proc, port: int, path: str, headers: dict[str, str], body: Json, limit: float) -> float:
    """The monotonic time at which a POST is first answered 200; raises if the process dies or
    `limit` seconds pass."""
    deadline = time.monotonic() + limit
    last = ""
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log_tail()}")
        try:
            status, data = post(port, path, headers, body, timeout=10)
            if status == 200:
                return time.monotonic()
            last = f"HTTP {status}: {data[:300]!r}"
            time.sleep(0.05)
        except (ConnectionError, OSError, http.client.HTTPException) as exc:
            last = repr(exc)
            time.sleep(0.005)
    raise RuntimeError(f"{proc.name} not answering 200 within {limit:.0f}s ({last}):\n{proc.log_tail()}")
