"""The SQLite store never blocks its event loop on the file: another connection's lock is waited
out between loop turns, and checkpoints run on a thread of their own."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from llmrelay.store import sqlite_io
from llmrelay.store.base import StoredResponse, StoreUnavailable
from llmrelay.store.sqlite import SQLiteStore


def record(rid: str) -> StoredResponse:
    return StoredResponse(id=rid, response={"id": rid, "status": "completed", "pad": "x" * 2000}, deployment="dep")


async def longest_gap(until: asyncio.Future[object]) -> float:
    """The longest the loop went without running this ticker, until `until` is done."""
    gap, last = 0.0, time.monotonic()
    while not until.done():
        await asyncio.sleep(0.005)
        now = time.monotonic()
        gap, last = max(gap, now - last), now
    return gap


@pytest.mark.parametrize("write", ["put", "puts", "conversation", "delete"])
async def test_another_connections_lock_is_waited_out_without_blocking_the_loop(tmp_path: Path, write: str) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    await store.put(record("resp_old"))
    holder = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's writer, say
    if write == "put":
        call = store.put(record("resp_new"))
    elif write == "puts":
        call = asyncio.gather(*(store.put(record(f"resp_{i}")) for i in range(3)))
    elif write == "conversation":
        call = store.set_conversation_items("conv_none", [{"id": "msg"}])
    else:
        call = store.delete("resp_old")
    task = asyncio.ensure_future(call)
    asyncio.get_running_loop().call_later(0.3, holder.execute, "COMMIT")  # needs the loop to run
    started = time.monotonic()
    assert await longest_gap(task) < 0.2  # the old way: blocked until its busy timeout, 5 s
    await task
    assert 0.3 <= time.monotonic() - started < 1.0
    assert (await store.get("resp_old") is None) == (write == "delete")
    holder.close()
    await store.close()


async def test_a_lock_held_past_the_busy_timeout_is_a_store_outage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_io, "BUSY_TIMEOUT", 0.2)
    monkeypatch.setattr("llmrelay.store.sqlite.BUSY_TIMEOUT", 0.2)
    store = SQLiteStore(tmp_path / "t.db")
    await store.ping()
    holder = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(StoreUnavailable):
        await store.put(record("resp_a"))
    with pytest.raises(StoreUnavailable):
        await store.renew_lease("resp_a", 1)
    assert await store.get("resp_a") is None  # reads go on under a writer's lock
    holder.execute("COMMIT")
    await store.put(record("resp_a"))  # and the store is back once the lock is gone
    assert await store.get("resp_a") is not None
    holder.close()
    await store.close()


async def test_checkpoints_run_off_the_loop(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    store = SQLiteStore(db)
    await store.ping()
    assert store._conn().execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    before = db.stat().st_size
    for i in range(400):  # about 1,000 WAL pages: past SQLite's own checkpoint point
        await store.put(record(f"resp_{i}"))
    deadline = time.monotonic() + 5
    while db.stat().st_size == before and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert db.stat().st_size > before  # the rows reached the database file: the checkpointer copied them
    await store.close()
    with contextlib.closing(sqlite3.connect(db)) as other:
        assert other.execute("SELECT count(*) FROM responses").fetchone()[0] == 400


async def test_a_store_dropped_without_closing_stops_its_checkpointer(tmp_path: Path) -> None:
    def checkpointers() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name == "llmrelay-sqlite-checkpoint"}

    before = checkpointers()
    store = SQLiteStore(tmp_path / "d.db")
    await store.ping()
    (thread,) = checkpointers() - before
    del store
    gc.collect()
    thread.join(3)  # it sees the store gone at its next round, within a second
    assert not thread.is_alive()
