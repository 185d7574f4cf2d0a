"""Start the real proxy (`python -m llmrelay.cli ...`) as a child process for e2e tests."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.fakes.process import REPO_ROOT, free_port


class ProxyProcess:
    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process, self.port, self.log = process, port, log
        self.root = f"http://127.0.0.1:{port}"
        self.url = self.root + "/v1"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> ProxyProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_config(config: dict[str, Any], directory: Path | None = None) -> Path:
    fd, name = tempfile.mkstemp(suffix=".yaml", dir=directory)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(config, f)
    return Path(name)


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion (for startup failures)."""
    return subprocess.run(
        [sys.executable, "-m", "llmrelay.cli", *args],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_proxy(*args: str, env: dict[str, str] | None = None, store: str | None = "memory") -> ProxyProcess:
    """`llmrelay <args> --port N`, waiting until /health/readiness answers."""
    port = free_port()
    fd, log_name = tempfile.mkstemp(prefix="proxy-", suffix=".log")
    child_env = {**os.environ, **(env or {})}
    if store is not None:
        child_env.setdefault("LLMRELAY_STORE", store)
    with os.fdopen(fd, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "llmrelay.cli", *args, "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    proxy = ProxyProcess(process, port, Path(log_name))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"proxy exited with {process.returncode}:\n{proxy.output()}")
        try:
            with urllib.request.urlopen(proxy.root + "/health/readiness", timeout=1) as r:
                if r.status == 200:
                    return proxy
        except OSError:
            time.sleep(0.05)
    proxy.stop()
    raise RuntimeError(f"proxy did not become ready:\n{proxy.output()}")
