"""SQLite store: the embedded default. One file, WAL, survives restarts, shared by the
processes of one machine.

Calls run inline on the event loop: with WAL and synchronous=NORMAL a commit does not
fsync, and a small row write costs less than the thread hop an async driver would add.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import orjson

from .base import StoredResponse

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    owner TEXT,
    deployment TEXT NOT NULL,
    upstream_id TEXT,
    previous_response_id TEXT,
    created_at INTEGER NOT NULL,
    status TEXT NOT NULL,
    response BLOB NOT NULL,
    input_items BLOB NOT NULL
);
PRAGMA user_version = 1;
"""
_COLUMNS = "id, owner, deployment, upstream_id, previous_response_id, created_at, response, input_items"


class SQLiteStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # the sync SDK's loop thread and user loops may share it

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=5000")
            db.executescript(_SCHEMA)
            self._db = db
        return self._db

    async def put(self, record: StoredResponse) -> None:
        row = (
            record.id,
            record.owner,
            record.deployment,
            record.upstream_id,
            record.previous_response_id,
            record.created_at,
            record.status,
            orjson.dumps(record.response),
            orjson.dumps(record.input_items),
        )
        with self._lock:
            self._conn().execute(
                "INSERT OR REPLACE INTO responses (id, owner, deployment, upstream_id, "
                "previous_response_id, created_at, status, response, input_items) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )

    async def get(self, response_id: str, owner: str | None = None) -> StoredResponse | None:
        with self._lock:
            row = (
                self._conn()
                .execute(f"SELECT {_COLUMNS} FROM responses WHERE id = ? AND owner IS ?", (response_id, owner))
                .fetchone()
            )
        if row is None:
            return None
        rid, own, dep, up, prev, created, response, items = row
        return StoredResponse(
            id=rid,
            owner=own,
            deployment=dep,
            upstream_id=up,
            previous_response_id=prev,
            created_at=created,
            response=orjson.loads(response),
            input_items=orjson.loads(items),
        )

    async def delete(self, response_id: str, owner: str | None = None) -> bool:
        with self._lock:
            cur = self._conn().execute("DELETE FROM responses WHERE id = ? AND owner IS ?", (response_id, owner))
        return cur.rowcount > 0

    async def ping(self) -> None:
        with self._lock:
            self._conn().execute("SELECT 1").fetchone()

    async def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
