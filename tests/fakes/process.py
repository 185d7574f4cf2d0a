"""Run a fake upstream server module as a real child process.

A fake module must be runnable as ``python -m <module> --port N [--option value ...]``
and serve these control endpoints next to its API routes:

- ``GET /_fake/health`` -> ``{"status": "ok", "base_path": "/v1", ...}``
- ``GET /_fake/requests`` / ``DELETE /_fake/requests``: recorded requests, clear them
- ``POST /_fake/enqueue``: a reply script (or a list of them), consumed FIFO
- ``POST /_fake/reset``: forget requests, scripts and any stored state

``tests.fakes.control`` implements them once for every fake, with the misbehaviours any
reply script can ask for (stalls, garbage, truncation, cut connections).
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODULE = "tests.fakes.openai_upstream"
# Talk to 127.0.0.1 directly even when the environment sets an HTTP proxy.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class FakeServerError(RuntimeError):
    """The fake process could not be started or stopped answering."""


class FakeServer:
    """Handle on a running fake: its base URL plus the control endpoints."""

    def __init__(
        self,
        module: str,
        process: subprocess.Popen[bytes],
        port: int,
        base_path: str,
        log_path: Path,
    ) -> None:
        self.module = module
        self.process = process
        self.port = port
        self.root = f"http://127.0.0.1:{port}"
        self.base_path = base_path
        # e.g. http://127.0.0.1:PORT/v1, what an SDK takes as base_url
        self.url = self.root + base_path
        self.log_path = log_path
        atexit.register(self.stop)

    def requests(self) -> list[dict[str, Any]]:
        """Every API request received so far, oldest first."""
        return self._call("GET", "/_fake/requests")

    def clear(self) -> None:
        """Forget the recorded requests."""
        self._call("DELETE", "/_fake/requests")

    def enqueue(self, reply: dict[str, Any] | list[dict[str, Any]]) -> None:
        """Script the next API call(s), FIFO; the fake module documents the fields."""
        self._call("POST", "/_fake/enqueue", reply)

    def reset(self) -> None:
        """Forget requests, pending scripts and stored objects."""
        self._call("POST", "/_fake/reset")

    def logs(self) -> str:
        """What the child wrote to stdout/stderr (server logs, tracebacks)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Terminate the child; safe to call more than once."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.log_path.unlink(missing_ok=True)
        atexit.unregister(self.stop)

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        if not self.alive():
            raise FakeServerError(f"{self.module} is not running:\n{self.logs()}")
        return _request(method, self.root + path, payload)

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"FakeServer({self.module!r}, url={self.url!r})"


def reset_around(fakes: Iterable[FakeServer]) -> Iterator[None]:
    """For an autouse fixture (`yield from`): every fake forgets what earlier tests scripted and
    sent, before the test and after it."""
    fakes = list(fakes)
    for fake in fakes:
        fake.reset()
    yield
    for fake in fakes:
        fake.reset()


def _request(method: str, url: str, payload: Any = None, timeout: float = 10.0) -> Any:
    """A JSON call on a control endpoint; the stdlib keeps this helper dependency-free."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    with _OPENER.open(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cli_args(options: dict[str, Any]) -> list[str]:
    """``background_delay=0.1`` -> ``--background-delay 0.1``; True -> bare flag."""
    args: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is not None and value is not False:
            args += [flag, str(value)]
    return args


def start_fake(
    module: str = DEFAULT_MODULE,
    *,
    base_path: str | None = None,
    timeout: float = 10.0,
    **options: Any,
) -> FakeServer:
    """Launch ``python -m module --port N`` and wait until it is healthy.

    ``base_path`` overrides the API prefix the module reports in its health
    answer (``/v1`` for OpenAI); ``options`` become command-line flags.
    """
    # The port is chosen here, so another process may grab it in between: retry.
    last_error: FakeServerError | None = None
    for _ in range(3):
        try:
            return _launch(module, free_port(), base_path, timeout, options)
        except FakeServerError as error:
            last_error = error
            if "address already in use" not in str(error).lower():
                raise
    assert last_error is not None
    raise last_error


def _launch(
    module: str,
    port: int,
    base_path: str | None,
    timeout: float,
    options: dict[str, Any],
) -> FakeServer:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    # A file rather than a pipe: nobody drains a pipe, and a full one would block the child.
    log_fd, log_name = tempfile.mkstemp(prefix="fake-", suffix=".log")
    log_path = Path(log_name)
    with os.fdopen(log_fd, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", module, "--port", str(port), *_cli_args(options)],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )

    def failure(reason: str) -> FakeServerError:
        output = log_path.read_text(errors="replace")
        log_path.unlink(missing_ok=True)
        return FakeServerError(f"{module} {reason}:\n{output}")

    deadline = time.monotonic() + timeout
    while True:
        code = process.poll()
        if code is not None:
            raise failure(f"exited with code {code} before it was healthy")
        try:
            health = _request("GET", f"http://127.0.0.1:{port}/_fake/health", timeout=1.0)
            break
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            process.kill()
            process.wait(timeout=5)
            raise failure(f"was not healthy after {timeout} s")
        time.sleep(0.05)
    if base_path is None:
        base_path = str(health.get("base_path", ""))
    return FakeServer(module, process, port, base_path.rstrip("/"), log_path)
