"""deploy/config.yaml running on two proxies, as the compose file and the Kubernetes manifests run it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.deploy.settings import DEPLOY
from tests.e2e.proxy_process import ProxyProcess, start_proxy
from tests.fakes.process import FakeServer

PG_URL = os.environ.get("LLMRELAY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="package")
def two_instances(openai_fake: FakeServer) -> Iterator[list[ProxyProcess]]:
    """deploy/config.yaml on two proxies sharing the test Postgres and Redis."""
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": openai_fake.url, "LLMRELAY_MASTER_KEY": "sk-master",
           "DATABASE_URL": PG_URL, "REDIS_HOST": "127.0.0.1", "REDIS_PASSWORD": ""}  # fmt: skip
    args = ("--config", str(DEPLOY / "config.yaml"), "--access-log")
    proxies = [start_proxy(*args, env=env, store=None)]
    try:
        proxies.append(start_proxy(*args, env=env, store=None))
        yield proxies
    finally:
        for proxy in proxies:
            proxy.stop()
