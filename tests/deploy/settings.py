"""deploy/config.yaml as llmrelay reads it, and the environment it needs."""

from __future__ import annotations

import os
import re

from llmrelay.config import Config, load_config
from tests.fakes.process import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"


def config_env_names() -> set[str]:
    """The environment variables deploy/config.yaml reads (`os.environ/NAME` outside comments)."""
    text = "\n".join(line.split("#", 1)[0] for line in (DEPLOY / "config.yaml").read_text().splitlines())
    return set(re.findall(r"os\.environ/(\w+)", text))


def deploy_config() -> Config:
    """deploy/config.yaml loaded by llmrelay, its secrets set to placeholders."""
    placeholders = {name: "placeholder" for name in config_env_names() if name not in os.environ}
    os.environ.update(placeholders)
    try:
        return load_config(str(DEPLOY / "config.yaml"))
    finally:
        for name in placeholders:
            del os.environ[name]


def seconds(duration: str) -> float:
    """A compose duration in whole seconds ("35s")."""
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, duration
    return float(match[1])
