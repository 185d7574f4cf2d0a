"""The image as the Dockerfile declares it (final stage), and its entry command run outside Docker.

No Docker engine runs where the tests run, so `docker build` is not exercised here: what is
checked is what the Dockerfile says, and that its exact entry command, environment, config
and healthcheck work when run as plain processes, with the image's absolute paths laid under
a temporary directory and `llmrelay` (the console script) run as `python -m llmrelay.cli`.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from dockerfile_parse import DockerfileParser

from tests.fakes.process import REPO_ROOT, free_port

DOCKERFILE = REPO_ROOT / "Dockerfile"
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Image:
    """What the final stage of the Dockerfile sets up."""

    base: str
    stages: int
    user: str | None
    workdir: str | None
    env: dict[str, str]
    expose: list[str]
    volumes: list[str]
    healthcheck_options: dict[str, str]
    healthcheck: list[str]
    entrypoint: list[str]
    cmd: list[str]
    copies: list[tuple[str, str]]  # (source in the build context, destination), not from other stages
    runs: list[str] = field(default_factory=list)

    @property
    def command(self) -> list[str]:
        return self.entrypoint + self.cmd


def parse_dockerfile(path: Path = DOCKERFILE) -> Image:
    parser = DockerfileParser(str(path))
    stages = [i for i, step in enumerate(parser.structure) if step["instruction"] == "FROM"]
    final = parser.structure[stages[-1] :]
    image = Image(base=final[0]["value"].split()[0], stages=len(stages), user=None, workdir=None,
                  env=dict(parser.envs), expose=[], volumes=[], healthcheck_options={}, healthcheck=[],
                  entrypoint=[], cmd=[], copies=[])  # fmt: skip
    for step in final[1:]:
        name, value = step["instruction"], step["value"]
        if name == "USER":
            image.user = value.strip()
        elif name == "WORKDIR":
            image.workdir = value.strip()
        elif name == "EXPOSE":
            image.expose += value.split()
        elif name == "VOLUME":
            image.volumes += json.loads(value) if value.lstrip().startswith("[") else value.split()
        elif name == "ENTRYPOINT":
            image.entrypoint = json.loads(value)
        elif name == "CMD":
            image.cmd = json.loads(value)
        elif name == "RUN":
            image.runs.append(value)
        elif name == "COPY" and not value.startswith("--from"):
            *sources, destination = shlex.split(value)
            image.copies += [(source, destination) for source in sources]
        elif name == "HEALTHCHECK":
            options, _, command = value.partition("CMD")
            image.healthcheck_options = dict(o.removeprefix("--").split("=", 1) for o in options.split())
            image.healthcheck = json.loads(command)
    return image


def console_script(name: str) -> list[str]:
    """The command pyproject's console script `name` runs, as `python -m module`."""
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, function = scripts[name].partition(":")
    assert function == "main", scripts[name]  # `python -m module` runs the module's main()
    return [sys.executable, "-m", module]


class Container:
    """The image's entry command running as a plain process, its filesystem under `root`."""

    def __init__(self, image: Image, env: dict[str, str] | None = None, args: list[str] | None = None) -> None:
        self.image = image
        self.root = Path(tempfile.mkdtemp(prefix="llmrelay-image-"))
        for source, destination in image.copies:
            if destination.startswith("/etc/"):  # the config it ships (the code is the worktree's)
                target = self.path(destination)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(REPO_ROOT / source, target)
        for volume in image.volumes:
            self.path(volume).mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        image_env = {k: str(self.path(v)) if v.startswith("/") else v for k, v in image.env.items() if k != "PATH"}
        # PORT is the one value changed: the image's own 4000 may be taken on this machine
        self.env = {**os.environ, **image_env, "PORT": str(self.port), "PYTHONPATH": str(REPO_ROOT), **(env or {})}
        self.log = self.root / "container.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.args = image.cmd if args is None else args

    def path(self, inside: str) -> Path:
        """Where a path of the image lies outside Docker."""
        return self.root / inside.lstrip("/")

    def argv(self, command: list[str]) -> list[str]:
        executable, *rest = command
        if executable == "llmrelay":
            head = console_script(executable)
        else:
            head = [sys.executable] if executable == "python" else [executable]
        return head + [str(self.path(a)) if a.startswith("/") else a for a in rest]

    def start(self) -> Container:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv(self.image.entrypoint + self.args),
                cwd=self.path(self.image.workdir or "/"),
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def healthcheck(self) -> subprocess.CompletedProcess[str]:
        """The HEALTHCHECK command, run as Docker would: in the container's environment."""
        timeout = float(self.image.healthcheck_options.get("timeout", "30s").removesuffix("s"))
        return subprocess.run(self.argv(self.image.healthcheck), env=self.env, capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip

    def wait_healthy(self, timeout: float = 20) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"exited with {self.process.returncode}:\n{self.output()}")
            try:
                with _DIRECT.open(f"http://127.0.0.1:{self.port}/health/liveliness", timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"not healthy after {timeout} s:\n{self.output()}")

    def stop(self) -> int | None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return None if self.process is None else self.process.returncode

    def __enter__(self) -> Container:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
