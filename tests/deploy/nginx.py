"""deploy/nginx.conf run by a real nginx, outside Docker.

The conf is mounted as conf.d/default.conf, inside the `http` block of the image's nginx.conf;
here it is included by a minimal main config writing under a temporary directory. Two things
change, both addresses: the compose service names of the upstream become 127.0.0.1 ports (no
Docker DNS here, and nginx resolves upstream names when it loads), and the listen port becomes
a free one. Under CI (`CI=true`) a missing nginx fails instead of skipping.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.fakes.process import REPO_ROOT, free_port

CONF = REPO_ROOT / "deploy" / "nginx.conf"
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is not installed (.ci/run installs it)")
        pytest.skip("nginx is not installed")
    return found


def upstream_servers(conf: str) -> list[str]:
    """`host:port` of each `server` line of the upstream block."""
    return re.findall(r"^\s*server\s+([\w.-]+:\d+)", conf, re.MULTILINE)


def listen_ports(conf: str) -> list[int]:
    return [int(p) for p in re.findall(r"^\s*listen\s+(\d+);", conf, re.MULTILINE)]


class Nginx:
    def __init__(self, upstreams: dict[str, int]) -> None:
        """`upstreams`: the port on 127.0.0.1 standing for each `host:port` of the conf."""
        self.root = Path(tempfile.mkdtemp(prefix="llmrelay-nginx-"))
        self.root.chmod(0o755)  # as root, nginx's workers run as nobody
        self.port = free_port()
        conf = CONF.read_text()
        for address, port in upstreams.items():
            conf, count = re.subn(rf"(server\s+){re.escape(address)}\b", rf"\g<1>127.0.0.1:{port}", conf)
            assert count == 1, address
        conf, count = re.subn(r"(listen\s+)\d+;", rf"\g<1>127.0.0.1:{self.port};", conf)
        assert count == 1
        (self.root / "default.conf").write_text(conf)
        temp = " ".join(f"{kind}_temp_path {self.root / kind};" for kind in ("client_body", "proxy", "fastcgi",
                                                                                 "uwsgi", "scgi"))  # fmt: skip
        (self.root / "nginx.conf").write_text(
            f"worker_processes 1;\npid {self.root / 'nginx.pid'};\nerror_log {self.root / 'error.log'} warn;\n"
            f"events {{ worker_connections 256; }}\n"
            f"http {{ access_log off; {temp} include {self.root / 'default.conf'}; }}\n"
        )
        self.binary = nginx_binary()
        self.process: subprocess.Popen[bytes] | None = None

    def command(self, *extra: str) -> list[str]:
        return [self.binary, "-p", str(self.root), "-c", str(self.root / "nginx.conf"),
                "-e", str(self.root / "error.log"), *extra]  # fmt: skip

    def test(self) -> subprocess.CompletedProcess[str]:
        """`nginx -t`: the configuration parsed and checked, addresses resolved."""
        return subprocess.run(self.command("-t"), capture_output=True, text=True, timeout=20)

    def start(self) -> Nginx:
        self.process = subprocess.Popen(self.command("-g", "daemon off;"), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.process.returncode}:\n{self.errors()}")
            try:
                with _DIRECT.open(f"http://127.0.0.1:{self.port}/health/liveliness", timeout=2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx did not answer:\n{self.errors()}")

    def errors(self) -> str:
        log = self.root / "error.log"
        return log.read_text(errors="replace") if log.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
