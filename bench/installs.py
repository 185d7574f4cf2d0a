"""Installs: each system in its own place under the cache dir; versions of what runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from common import CACHE, PORTKEY_NODE_SERVER, log


def ensure_apt(tools: dict[str, str]) -> None:
    missing = [pkg for binary, pkg in tools.items() if not shutil.which(binary) and not Path(binary).exists()]
    if not missing:
        return
    log(f"installing {' '.join(missing)} from Debian's packages")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)


def nginx_binary() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


def ensure_python_packages(names: list[str]) -> None:
    import importlib.util

    missing = [n for n in names if importlib.util.find_spec(n) is None]
    if missing:
        log(f"pip install {' '.join(missing)}")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *missing], check=True)


def litellm_venv() -> Path:
    venv = CACHE / "litellm-venv"
    exe = venv / "bin" / "litellm"
    if not exe.exists():
        log(f"installing litellm[proxy] into {venv} (a few minutes)")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "litellm[proxy]"], check=True)
    return venv


def portkey_dir() -> Path:
    where = CACHE / "portkey"
    entry = where / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    pinned = where / "node_modules" / "@hono" / "node-server" / "package.json"
    ok = entry.exists() and pinned.exists() and json.loads(pinned.read_text())["version"] == PORTKEY_NODE_SERVER
    if not ok:
        if not shutil.which("npm"):
            ensure_apt({"npm": "npm"})
        log(f"installing @portkey-ai/gateway into {where}")
        where.mkdir(parents=True, exist_ok=True)
        package = {
            "name": "llmrelay-bench-portkey",
            "private": True,
            "dependencies": {"@portkey-ai/gateway": "*"},
            "overrides": {"@hono/node-server": PORTKEY_NODE_SERVER},
        }
        (where / "package.json").write_text(json.dumps(package, indent=2) + "\n")
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], check=True, cwd=where)
    return where


def server_libs() -> dict[str, str | None]:
    """uvicorn picks uvloop and httptools when importable, which changes llmrelay's numbers."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in ("uvicorn", "uvloop", "httptools"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _version(argv: list[str], pattern: str = r"[\d.]+\d") -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    m = re.search(pattern, out.stdout + out.stderr)
    return m.group(0) if m else "?"
