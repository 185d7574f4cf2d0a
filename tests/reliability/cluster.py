"""Proxy instances on one private Postgres, with two virtual keys, for the kill and restart
runs: traffic in the background while a fault happens, then the history checker."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import openai
from openai import OpenAI

from tests.e2e.private_postgres import PrivatePostgres
from tests.e2e.proxy_process import ProxyProcess, start_proxy, write_config
from tests.e2e.test_store_outage import http
from tests.fakes.process import FakeServer
from tests.reliability import figures
from tests.reliability.history import ACTIVE, History, Row, Verdict, check
from tests.reliability.traffic import drive

MASTER = "sk-master"
LEASE = 4  # seconds: LLMRELAY_JOB_LEASE, the shortest the renewal loop allows
ENV = {"LLMRELAY_JOB_LEASE": str(LEASE)}


def cluster_config(pg: PrivatePostgres, fake: FakeServer, folder: Path, **general: Any) -> Path:
    deployment = {"model": "anthropic/claude-sonnet-4-5", "api_key": "k", "api_base": fake.url, "timeout": 5}
    settings = {"master_key": MASTER, "database_url": pg.url, **general}
    model_list = [{"model_name": "claude", "litellm_params": deployment}]
    return write_config({"model_list": model_list, "general_settings": settings}, folder)


def start(config: Path, env: dict[str, str] | None = None) -> ProxyProcess:
    """An instance, warmed up: its first calls load the adapter and the stream code."""
    proxy = start_proxy("--config", str(config), store=None, env={**ENV, **(env or {})})
    client = OpenAI(base_url=proxy.url, api_key=MASTER, max_retries=0, timeout=30)
    client.responses.create(model="claude", input="warm", store=False)
    with client.responses.create(model="claude", input="warm", store=False, stream=True) as events:
        list(events)
    return proxy


def start_two(config: Path) -> tuple[ProxyProcess, ProxyProcess]:
    """Two instances, started side by side."""
    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(lambda _: start(config), range(2))
    return a, b


def mint_keys(proxy: ProxyProcess, n: int = 2) -> list[str]:
    keys = []
    for _ in range(n):
        status, minted = http("POST", proxy.root + "/key/generate", {})
        assert status == 200, minted
        keys.append(minted["key"])
    return keys


def stored_rows(pg: PrivatePostgres) -> dict[str, Row]:
    async def read() -> dict[str, Row]:
        conn = await asyncpg.connect(pg.url)
        try:
            rows = await conn.fetch(
                "SELECT id, owner, status, lease_until, previous_response_id FROM llmrelay_responses"
            )
        finally:
            await conn.close()
        return {r["id"]: Row(r["owner"], r["status"], r["lease_until"], r["previous_response_id"]) for r in rows}

    return asyncio.run(read())


def public_status(url: str) -> Callable[[str, str], str | None]:
    clients: dict[str, OpenAI] = {}
    lock = threading.Lock()

    def status(key: str, response_id: str) -> str | None:
        with lock:
            client = clients.setdefault(key, OpenAI(base_url=url, api_key=key, max_retries=2, timeout=10))
        try:
            return client.responses.retrieve(response_id).status
        except openai.NotFoundError:
            return None

    return status


@contextlib.contextmanager
def traffic(history: History, urls: list[str], keys: list[str], threads: int = 6) -> Iterator[None]:
    """Mixed traffic from `threads` clients for as long as the block runs."""
    stop = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            drive(history, urls, keys, "claude", stop, threads)
        except BaseException as exc:
            failure.append(exc)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    try:
        yield
    finally:
        stop.set()
        runner.join(60)
    assert not runner.is_alive(), "a client call hung"
    if failure:
        raise failure[0]


def settle_and_check(history: History, pg: PrivatePostgres, url: str, timeout: float = LEASE + 15) -> Verdict:
    """Wait for running jobs to finish (or their leases to run out), then check the history."""
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        rows = stored_rows(pg)
        if not any(r.status in ACTIVE and (r.lease_until or 0) >= time.time() for r in rows.values()):
            break
        time.sleep(0.2)
    time.sleep(1.1)  # lease_until is whole seconds
    verdict = check(history, stored_rows(pg), public_status(url), time.time())
    print(verdict.line(), f"(settled and checked in {time.monotonic() - started:.1f} s)")
    figures.add("records lost", len(verdict.lost))
    figures.add("records checked", verdict.acknowledged)
    return verdict
