"""Store faults under real proxies: a SQLite file locked by another process, a full disk,
Postgres stopped for 5 s under two-key traffic (history checked), Postgres out of
connections, and the Redis the config names going away.

What a client sees is a 503 in OpenAI's shape it may retry, or success; never a 500, never
a hang; and the store holds every response a client was told about. A Postgres restart with
every API that needs the store is tests/e2e/test_store_outage.py."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import openai
import pytest
from openai import OpenAI

from tests.e2e.private_postgres import PrivatePostgres
from tests.e2e.proxy_process import ProxyProcess, start_proxy, write_config
from tests.fakes.process import FakeServer, free_port
from tests.reliability import figures
from tests.reliability.cluster import cluster_config, mint_keys, settle_and_check, start, traffic
from tests.reliability.history import History

BUSY = 5.0  # seconds: the SQLite store's busy_timeout


def require(ok: bool, why: str) -> None:
    """Under CI nothing here may skip: root and the tools are there."""
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)


def outcome(client: OpenAI, stream: bool = False) -> str:
    """ "completed" or the HTTP status; a stream's terminal status. Bounded by the client's timeout."""
    try:
        if stream:
            with client.responses.create(model="demo", input="hi", stream=True) as events:
                last = [e for e in events][-1]
            return last.response.status if hasattr(last, "response") else last.type
        return client.responses.create(model="demo", input="hi").status
    except openai.APIStatusError as err:
        assert err.body["type"] == "service_unavailable", err.body  # OpenAI's shape, never a 500
        return str(err.status_code)
    finally:
        figures.add("responses checked")


def stored_statuses(db: Path) -> dict[str, str]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return dict(conn.execute("SELECT id, status FROM responses").fetchall())


# -- SQLite ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def locked(db: Path, seconds: float) -> Iterator[None]:
    """Another process holds an exclusive lock on the database file for `seconds`."""
    hold = (
        f"import sqlite3, time; db = sqlite3.connect({str(db)!r}, isolation_level=None);"
        f" db.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep({seconds})"
    )
    holder = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE)
    assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
    figures.add("faults injected")
    try:
        yield
    finally:
        holder.kill()
        holder.wait()


def test_a_sqlite_file_locked_by_another_process_is_a_503_then_works(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    with start_proxy("demo", store=str(db)) as proxy:
        client = OpenAI(base_url=proxy.url, api_key="k", max_retries=0, timeout=30)
        before = client.responses.create(model="demo", input="before")
        with locked(db, 3 * BUSY), ThreadPoolExecutor(1) as pool:
            started = time.monotonic()
            waiting = pool.submit(outcome, client)
            time.sleep(0.5)  # the create is waiting out the lock: the worker goes on serving meanwhile
            assert client.responses.retrieve(before.id).status == "completed"
            assert time.monotonic() - started < 1.5
            assert waiting.result() == "503"
            assert time.monotonic() - started < BUSY + 3
            # a stream whose record cannot be written does not announce success
            assert outcome(client, stream=True) in ("failed", "503", "error")
            assert client.responses.retrieve(before.id).status == "completed"  # reads go on
        after = client.responses.create(model="demo", input="after")
        statuses = stored_statuses(db)
        assert statuses[before.id] == statuses[after.id] == "completed"
        assert_no_traceback(proxy)


# -- a full disk -----------------------------------------------------------------------------------


@contextlib.contextmanager
def tiny_tmpfs(size: str = "4m") -> Iterator[Path]:
    require(os.geteuid() == 0 and shutil.which("mount") is not None, "mounting a tmpfs needs root")
    where = Path(tempfile.mkdtemp(prefix="llmrelay-full-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    require(done.returncode == 0, f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
        where.rmdir()


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    with filler.open("wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 65536)
            f.flush()
    figures.add("faults injected")
    return filler


def test_a_full_disk_is_a_503_and_nothing_acknowledged_is_lost() -> None:
    with tiny_tmpfs() as disk:
        db = disk / "store.db"
        with start_proxy("demo", store=str(db)) as proxy:
            client = OpenAI(base_url=proxy.url, api_key="k", max_retries=0, timeout=30)
            acknowledged = [client.responses.create(model="demo", input=f"before {i}").id for i in range(5)]
            filler = fill(disk)
            seen = [outcome(client, stream=i % 2 == 1) for i in range(20)]
            assert "503" in seen or "failed" in seen, seen  # the disk ran out somewhere in these
            assert set(seen) <= {"completed", "503", "failed", "error"}, seen
            for i, (plain, streamed) in enumerate(zip(seen[::2], seen[1::2], strict=True)):
                assert plain in ("completed", "503") and streamed in ("completed", "failed", "503", "error"), i
            filler.unlink()
            acknowledged.append(client.responses.create(model="demo", input="after").id)
            statuses = stored_statuses(db)
            lost = [rid for rid in acknowledged if statuses.get(rid) != "completed"]
            figures.add("records lost", len(lost))
            assert not lost
            assert_no_traceback(proxy)


# -- Postgres --------------------------------------------------------------------------------------


def test_postgres_stopped_for_5_seconds_under_traffic(pg: PrivatePostgres, fake: FakeServer, tmp_path: Path) -> None:
    config = cluster_config(pg, fake, tmp_path)
    history = History()
    with start(config) as proxy:
        keys = mint_keys(proxy)
        with traffic(history, [proxy.url], keys, threads=4):
            time.sleep(1.0)
            pg.stop()
            figures.add("faults injected")
            try:
                time.sleep(5.0)
            finally:
                pg.start()
            time.sleep(2.0)
        verdict = settle_and_check(history, pg, proxy.url)
        errors = {c.error for c in history.calls if c.error}
        # the outage, said as such; never a 500 or a cut connection
        assert errors <= {"503"}, [c for c in history.calls if c.error not in (None, "503")]
        # asyncpg's pool logs its own reconnect attempts with a traceback; llmrelay logs no error
        assert not [line for line in proxy.output().splitlines() if line.startswith("ERROR")]
    assert "503" in errors
    assert len([c for c in history.calls if c.error is None and c.status == "completed"]) > 5
    assert verdict.clean, verdict


@contextlib.contextmanager
def every_connection_taken(pg: PrivatePostgres) -> Iterator[int]:
    """Hold every connection the server has left, so that any new one is refused."""

    async def take() -> list[asyncpg.Connection]:
        held: list[asyncpg.Connection] = []
        while True:
            try:
                held.append(await asyncpg.connect(pg.url))
            except asyncpg.TooManyConnectionsError:
                return held

    async def release(held: list[asyncpg.Connection]) -> None:
        await asyncio.gather(*(c.close() for c in held))

    loop = asyncio.new_event_loop()
    held = loop.run_until_complete(take())
    figures.add("faults injected")
    try:
        yield len(held)
    finally:
        loop.run_until_complete(release(held))
        loop.close()


def test_postgres_out_of_connections_is_a_503_then_works(pg: PrivatePostgres, fake: FakeServer, tmp_path: Path) -> None:
    config = cluster_config(pg, fake, tmp_path)
    with start(config) as proxy:
        client = OpenAI(base_url=proxy.url, api_key="sk-master", max_retries=0, timeout=30)
        with every_connection_taken(pg) as taken, ThreadPoolExecutor(12) as pool:
            assert taken > 10
            # more calls at once than the pool holds open: it must grow, and cannot
            seen = list(pool.map(lambda _: claude_outcome(client), range(24)))
        assert set(seen) <= {"completed", "503"}, seen
        assert claude_outcome(client) == "completed"
        assert_no_traceback(proxy)


def claude_outcome(client: OpenAI) -> str:
    try:
        return client.responses.create(model="claude", input="hi").status
    except openai.APIStatusError as err:
        assert err.body["type"] == "service_unavailable", err.body
        return str(err.status_code)
    finally:
        figures.add("responses checked")


# -- Redis -----------------------------------------------------------------------------------------


@contextlib.contextmanager
def own_redis() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A redis-server of this test's own, on a free port (never the shared one)."""
    binary = shutil.which("redis-server")
    require(binary is not None, "redis-server is not installed")
    port = free_port()
    server = subprocess.Popen(
        [str(binary), "--port", str(port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
    )
    try:
        yield server, f"redis://127.0.0.1:{port}/0"
    finally:
        server.kill()
        server.wait()


def test_the_redis_the_config_names_going_away(fake: FakeServer, tmp_path: Path) -> None:
    with own_redis() as (server, url):
        deployment = {"model": "anthropic/claude-sonnet-4-5", "api_key": "k", "api_base": fake.url, "rpm": 10_000}
        config = {
            "model_list": [{"model_name": "claude", "litellm_params": deployment}],
            "router_settings": {"redis_url": url},
        }
        with start_proxy("--config", str(write_config(config, tmp_path))) as proxy:
            client = OpenAI(base_url=proxy.url, api_key="k", max_retries=0, timeout=30)
            assert claude_outcome(client) == "completed"
            server.kill()
            server.wait()
            figures.add("faults injected")
            started = time.monotonic()
            seen = [claude_outcome(client) for _ in range(4)]
            assert time.monotonic() - started < 20
            assert set(seen) <= {"completed", "503"}, seen
            assert_no_traceback(proxy)


def assert_no_traceback(proxy: ProxyProcess) -> None:
    assert "Traceback" not in proxy.output(), proxy.output()[-3000:]
