"""SQLite group commit: concurrent puts share one transaction, each returns once committed, and
a row that cannot be written fails only its own put."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from llmrelay.store.base import StoredResponse
from llmrelay.store.sqlite import SQLiteStore


def record(rid: str) -> StoredResponse:
    return StoredResponse(id=rid, response={"id": rid, "status": "completed"}, deployment="dep")


async def test_concurrent_puts_commit_in_one_transaction(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "g.db")
    await store.ping()
    statements: list[str] = []
    store._conn().set_trace_callback(statements.append)
    await asyncio.gather(*(store.put(record(f"resp_{i}")) for i in range(5)))
    assert sum(s.startswith("BEGIN") for s in statements) == 1
    assert sum(s.startswith("COMMIT") for s in statements) == 1
    other = SQLiteStore(tmp_path / "g.db")  # another connection: committed, not only written
    for i in range(5):
        assert await other.get(f"resp_{i}") is not None
    await store.put(record("resp_alone"))  # one put alone: its own autocommit statement
    assert sum(s.startswith("BEGIN") for s in statements) == 1


async def test_a_row_that_cannot_be_written_fails_only_its_own_put(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "f.db")
    await store.ping()
    store._conn().execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON responses WHEN NEW.id = 'resp_bad'"
        " BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    results = await asyncio.gather(
        store.put(record("resp_good")), store.put(record("resp_bad")), return_exceptions=True
    )
    assert results[0] is None
    assert isinstance(results[1], Exception) and "refused" in str(results[1])
    assert await store.get("resp_good") is not None
    assert await store.get("resp_bad") is None
    with pytest.raises(Exception, match="refused"):
        await store.put(record("resp_bad"))
