"""The Dockerfile: what it declares, and its entry command, config and healthcheck run outside Docker."""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from openai import OpenAI

from tests.deploy.image import Container, parse_dockerfile
from tests.fakes.process import REPO_ROOT, FakeServer


def test_the_dockerfile_declares_a_small_non_root_image_with_a_healthcheck_and_llmrelay_as_entry() -> None:
    image = parse_dockerfile()
    assert image.stages == 2 and image.base.startswith("python:3.11-slim")
    assert image.user is not None and image.user.split(":")[0] not in ("root", "0")
    assert image.entrypoint == ["llmrelay"]
    assert image.cmd == ["--config", "/etc/llmrelay/config.yaml"]  # `docker run img --config x` replaces CMD
    assert ("deploy/image-config.yaml", "/etc/llmrelay/config.yaml") in image.copies
    assert image.expose == ["4000"] and image.env["PORT"] == "4000"
    store = Path(image.env["LLMRELAY_STORE"])
    assert str(store.parent) in image.volumes  # the SQLite store outlives the container
    assert any("chown" in run and str(store.parent) in run for run in image.runs)  # and its user may write it
    assert image.healthcheck[:2] == ["python", "-c"] and "/health/liveliness" in image.healthcheck[2]
    assert {"interval", "timeout", "start-period", "retries"} <= image.healthcheck_options.keys()


def test_the_build_context_holds_what_the_dockerfile_copies_and_nothing_else() -> None:
    lines = [line.strip() for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()]
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*"  # everything left out ...
    kept = {rule.removeprefix("!").rstrip("/") for rule in rules if rule.startswith("!")}
    copied = {"pyproject.toml", "README.md", "llmrelay"} | {source for source, _ in parse_dockerfile().copies}
    assert kept == copied  # ... but what is copied
    assert all((REPO_ROOT / path).exists() for path in kept)


def test_the_entry_command_serves_the_shipped_config_and_its_healthcheck_passes(openai_fake: FakeServer) -> None:
    openai_fake.reset()
    image = parse_dockerfile()
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": openai_fake.url}
    with Container(image, env) as container:
        container.wait_healthy()
        check = container.healthcheck()
        assert check.returncode == 0, check.stderr
        client = OpenAI(base_url=f"http://127.0.0.1:{container.port}/v1", api_key="k", max_retries=0)
        created = client.responses.create(model="openai/gpt-4o", input="hi")
        assert created.output_text == "Echo (turns=1): hi"
        assert client.responses.retrieve(created.id).output_text == created.output_text
        # Stored in the SQLite file on the image's volume.
        store = container.path(image.env["LLMRELAY_STORE"])
        with sqlite3.connect(store) as db:
            assert db.execute("SELECT count(*) FROM responses WHERE id = ?", (created.id,)).fetchone() == (1,)
        # `docker stop` sends SIGTERM: a clean exit, and the healthcheck then fails.
        assert container.process is not None
        container.process.send_signal(signal.SIGTERM)
        assert container.process.wait(timeout=15) == 0
        assert container.healthcheck().returncode != 0


def test_the_image_installs_every_file_of_the_package(tmp_path: Path) -> None:
    """The image installs llmrelay from the build context with `pip install .`, not from the
    source tree: a file under llmrelay/ that packaging leaves out (HTML, JSON data without
    package-data) would be missing there only. setuptools' build_py (what a wheel of a pure
    package holds) is run on a copy of the build context."""
    tracked = subprocess.run(["git", "ls-files", "llmrelay"], cwd=REPO_ROOT, capture_output=True, text=True,
                             check=True).stdout.split()  # fmt: skip
    context = tmp_path / "context"
    for name in ["pyproject.toml", "README.md", *tracked]:
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / name, context / name)
    (context / "setup.py").write_text("import setuptools\n\nsetuptools.setup()\n")  # the pyproject config
    built = tmp_path / "built"
    subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(built)], cwd=context,
                   capture_output=True, check=True, timeout=60)  # fmt: skip
    installed = {str(p.relative_to(built)) for p in built.rglob("*") if p.is_file()}
    assert set(tracked) - installed == set()
