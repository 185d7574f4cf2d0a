"""SQLite store: the embedded default. One file, WAL, survives restarts, shared by the
processes of one machine.

Calls run inline on the event loop: with WAL and synchronous=NORMAL a commit does not
fsync, and a small row write costs less than the thread hop an async driver would add.
Response records are written with group commit: the puts of one loop iteration (concurrent
requests finishing together) share one transaction, and each put returns once it committed.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from .base import ACTIVE, Conversation, Event, Json, StoredResponse, StoreUnavailable
from .sqlite_gateway import MIGRATION, SQLiteGateway

_MIGRATIONS = [
    """
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
    """,
    """
    ALTER TABLE responses ADD COLUMN lease_until INTEGER;
    CREATE TABLE IF NOT EXISTS response_events (
        response_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        type TEXT NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (response_id, seq)
    );
    CREATE TABLE IF NOT EXISTS conversations (
        id TEXT PRIMARY KEY,
        owner TEXT,
        created_at INTEGER NOT NULL,
        metadata BLOB NOT NULL,
        items BLOB NOT NULL
    );
    """,
    """
    CREATE TABLE IF NOT EXISTS api_keys (
        key_hash TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        alias TEXT,
        created_at INTEGER NOT NULL
    );
    """,
    MIGRATION,
    # the admin page's list of running jobs: only active rows are in this index
    "CREATE INDEX IF NOT EXISTS responses_active ON responses (created_at) WHERE status IN ('queued', 'in_progress');",
]
_COLUMNS = "id, owner, deployment, upstream_id, previous_response_id, created_at, response, input_items, lease_until"
_PUT = f"INSERT OR REPLACE INTO responses ({_COLUMNS}, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
log = logging.getLogger("llmrelay")
_ACTIVE = "status IN ({})".format(", ".join(f"'{s}'" for s in ACTIVE))


class SQLiteStore(SQLiteGateway):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # the sync SDK's loop thread and user loops may share it
        # Puts waiting for their loop's next turn, to commit together (group commit).
        self._pending: dict[asyncio.AbstractEventLoop, list[tuple[tuple[Any, ...], asyncio.Future[None]]]] = {}

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=5000")
            db.execute("BEGIN IMMEDIATE")  # one migrator at a time across processes
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for n, script in enumerate(_MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {n}")
            db.execute("COMMIT")
            self._db = db
        return self._db

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            try:
                return self._conn().execute(sql, args)
            except sqlite3.OperationalError as exc:
                if not _unavailable(exc):
                    raise
                log.warning("sqlite store unavailable: %s", exc)
                raise StoreUnavailable() from exc

    # -- responses ---------------------------------------------------------------------------

    async def put(self, record: StoredResponse) -> None:
        loop = asyncio.get_running_loop()
        batch = self._pending.get(loop)
        if batch is None:
            batch = self._pending[loop] = []
            loop.call_soon(self._commit_puts, loop)
        done = loop.create_future()
        batch.append((_row(record), done))
        await done

    def _commit_puts(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._pending.pop(loop)
        if len(batch) > 1:
            try:
                with self._lock:
                    db = self._conn()
                    db.execute("BEGIN IMMEDIATE")
                    try:
                        db.executemany(_PUT, [row for row, _ in batch])
                        db.execute("COMMIT")
                    except BaseException:
                        db.execute("ROLLBACK")
                        raise
            except Exception:
                pass  # nothing was written: each put goes alone, so only a failing one fails
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)
                return
        for row, done in batch:
            try:
                self._run(_PUT, row)
            except Exception as exc:
                if not done.done():
                    done.set_exception(exc)
            else:
                if not done.done():
                    done.set_result(None)

    async def update_active(self, record: StoredResponse) -> bool:
        cur = self._run(
            "UPDATE responses SET response = ?, status = ?, upstream_id = ?, lease_until = ?"
            f" WHERE id = ? AND {_ACTIVE}",
            (orjson.dumps(record.response), record.status, record.upstream_id, record.lease_until, record.id),
        )
        return cur.rowcount > 0

    async def get(self, response_id: str, owner: str | None = None) -> StoredResponse | None:
        row = self._run(
            f"SELECT {_COLUMNS} FROM responses WHERE id = ? AND owner IS ?", (response_id, owner)
        ).fetchone()
        if row is None:
            return None
        return StoredResponse.from_row(row)

    async def delete(self, response_id: str, owner: str | None = None) -> bool:
        cur = self._run("DELETE FROM responses WHERE id = ? AND owner IS ?", (response_id, owner))
        if cur.rowcount:
            self._run("DELETE FROM response_events WHERE response_id = ?", (response_id,))
        return cur.rowcount > 0

    async def find(self, response_id: str) -> StoredResponse | None:
        row = self._run(f"SELECT {_COLUMNS} FROM responses WHERE id = ?", (response_id,)).fetchone()
        return None if row is None else StoredResponse.from_row(row)

    async def active(self, limit: int) -> list[StoredResponse]:
        rows = self._run(
            f"SELECT {_COLUMNS} FROM responses WHERE {_ACTIVE}"
            " AND json_extract(CAST(response AS TEXT), '$.background') ORDER BY created_at DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [StoredResponse.from_row(r) for r in rows]

    async def renew_lease(self, response_id: str, until: int) -> None:
        self._run("UPDATE responses SET lease_until = ? WHERE id = ?", (until, response_id))

    async def append_events(self, response_id: str, events: list[Event]) -> None:
        with self._lock:
            self._conn().executemany(
                "INSERT OR IGNORE INTO response_events (response_id, seq, type, data) VALUES (?, ?, ?, ?)",
                [(response_id, seq, kind, data) for seq, kind, data in events],
            )

    async def events_after(self, response_id: str, after: int) -> list[Event]:
        rows = self._run(
            "SELECT seq, type, data FROM response_events WHERE response_id = ? AND seq > ? ORDER BY seq",
            (response_id, after),
        ).fetchall()
        return [(seq, kind, bytes(data)) for seq, kind, data in rows]

    # -- conversations -----------------------------------------------------------------------

    async def put_conversation(self, conversation: Conversation) -> None:
        c = conversation
        self._run(
            "INSERT INTO conversations (id, owner, created_at, metadata, items) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET metadata = excluded.metadata",
            (c.id, c.owner, c.created_at, orjson.dumps(c.metadata), orjson.dumps(c.items)),
        )

    async def get_conversation(self, conversation_id: str, owner: str | None = None) -> Conversation | None:
        row = self._run(
            "SELECT id, owner, created_at, metadata, items FROM conversations WHERE id = ? AND owner IS ?",
            (conversation_id, owner),
        ).fetchone()
        if row is None:
            return None
        cid, own, created, metadata, items = row
        return Conversation(cid, created, orjson.loads(metadata), orjson.loads(items), own)

    async def delete_conversation(self, conversation_id: str, owner: str | None = None) -> bool:
        cur = self._run("DELETE FROM conversations WHERE id = ? AND owner IS ?", (conversation_id, owner))
        return cur.rowcount > 0

    async def set_conversation_items(
        self, conversation_id: str, items: list[Json], owner: str | None = None, *, append: bool = True
    ) -> bool:
        with self._lock:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")  # read-modify-write, atomic across processes
            try:
                row = db.execute(
                    "SELECT items FROM conversations WHERE id = ? AND owner IS ?", (conversation_id, owner)
                ).fetchone()
                if row is not None:
                    merged = (orjson.loads(row[0]) if append else []) + items
                    db.execute(
                        "UPDATE conversations SET items = ? WHERE id = ?", (orjson.dumps(merged), conversation_id)
                    )
            finally:
                db.execute("COMMIT")
        return row is not None

    async def subscribe(self, callback: Callable[[str], None]) -> bool:
        return False  # one process (or workers polling the file): no channel

    def listening(self) -> bool | None:
        return None

    async def publish(self, message: str) -> None:
        return None

    async def ping(self) -> None:
        self._run("SELECT 1").fetchone()

    async def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def _unavailable(exc: sqlite3.OperationalError) -> bool:
    """A file locked by another process past busy_timeout, a full disk, a failing disk: the
    store is out of reach for now (a 503 to retry), not broken."""
    text = str(exc).lower()
    return any(words in text for words in ("locked", "busy", "disk is full", "disk i/o", "unable to open"))


def _row(r: StoredResponse) -> tuple[Any, ...]:
    return (
        r.id,
        r.owner,
        r.deployment,
        r.upstream_id,
        r.previous_response_id,
        r.created_at,
        orjson.dumps(r.response),
        orjson.dumps(r.input_items),
        r.lease_until,
        r.status,
    )
