"""SQLite store: the embedded default. One file, WAL, survives restarts, shared by the
processes of one machine.

Calls run inline on the event loop: with WAL and synchronous=NORMAL a commit does not
fsync, and a small row write costs less than the thread hop an async driver would add. What
would block the loop (another connection's lock, a checkpoint's fsyncs) is kept off it
(sqlite_io.py). Response records are written with group commit: the puts of one loop iteration
(concurrent requests finishing together) share one transaction, and each put returns once it
committed.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson

from .base import ACTIVE, Conversation, Event, Json, StoredResponse, StoreUnavailable
from .sqlite_gateway import MIGRATION, SQLiteGateway
from .sqlite_io import BUSY_TIMEOUT, FIRST_PAUSE, Busy, Checkpointer, failure, next_pause, patiently, warn_locked_out

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
T = TypeVar("T")
NUDGE_AFTER = 256  # response rows written before the checkpointer is asked for a round (a few pages each)
_ACTIVE = "status IN ({})".format(", ".join(f"'{s}'" for s in ACTIVE))


class SQLiteStore(SQLiteGateway):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self._db: sqlite3.Connection | None = None
        self._checkpointer: Checkpointer | None = None
        self._lock = threading.Lock()  # the sync SDK's loop thread and user loops may share it
        # Puts waiting for their loop's next turn, to commit together (group commit).
        self._pending: dict[asyncio.AbstractEventLoop, list[tuple[tuple[Any, ...], asyncio.Future[None]]]] = {}
        self._locked_out: dict[asyncio.AbstractEventLoop, tuple[float, float]] = {}  # loop: (deadline, pause)
        self._rows = 0  # rows written since the checkpointer was last nudged

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            deadline = time.monotonic() + BUSY_TIMEOUT
            while True:  # workers opening a new file together: one turns it to WAL, the others wait
                try:
                    db = self._open()
                    break
                except sqlite3.OperationalError as exc:
                    if not isinstance(failure(exc), Busy) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
            self._checkpointer = Checkpointer(self.path)
            weakref.finalize(self, self._checkpointer.close)  # a store dropped unclosed stops its thread
            self._db = db
        return self._db

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")  # opening may wait, once
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("BEGIN IMMEDIATE")  # one migrator at a time across processes
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for n, script in enumerate(_MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {n}")
            db.execute("COMMIT")
        except BaseException:
            db.close()
            raise
        db.execute("PRAGMA busy_timeout=0")  # from now on a lock is waited out on the loop
        db.execute("PRAGMA wal_autocheckpoint=0")  # and the checkpointer's thread checkpoints
        db.execute("PRAGMA journal_size_limit=67108864")  # a WAL that grew past 64 MiB shrinks back
        return db

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        """One statement now; raises Busy while another connection holds the lock it needs."""
        with self._lock:
            try:
                return self._conn().execute(sql, args)
            except sqlite3.OperationalError as exc:
                raise failure(exc) from exc

    async def _sql(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        return await patiently(self._run, sql, args)

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work` in one write transaction, now; raises Busy while another connection writes."""
        with self._lock:
            try:
                db = self._conn()
                db.execute("BEGIN IMMEDIATE")
                try:
                    done = work(db)
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                raise failure(exc) from exc
            return done

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
        batch = self._pending[loop]  # stays pending while locked out, so later puts join it
        try:
            self._write_puts(batch)
        except Busy:
            now = time.monotonic()
            deadline, pause = self._locked_out.get(loop, (now + BUSY_TIMEOUT, 0.0))
            if now < deadline:
                pause = next_pause(pause) if pause else FIRST_PAUSE
                self._locked_out[loop] = (deadline, pause)
                loop.call_later(pause, self._commit_puts, loop)
                return
            warn_locked_out()
            for _, done in batch:
                if not done.done():
                    done.set_exception(StoreUnavailable())
            batch.clear()
        del self._pending[loop]
        self._locked_out.pop(loop, None)

    def _write_puts(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[None]]]) -> None:
        """Settles the batch's puts, removing each settled one; raises Busy with the rest left."""
        if len(batch) > 1:
            try:
                self._transaction(lambda db: db.executemany(_PUT, [row for row, _ in batch]))
            except Busy:
                raise
            except Exception:
                pass  # nothing was written: each put goes alone, so only a failing one fails
            else:
                self._wrote(len(batch))
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)
                batch.clear()
                return
        while batch:
            row, done = batch[0]
            try:
                self._run(_PUT, row)
            except Busy:
                raise
            except Exception as exc:
                if not done.done():
                    done.set_exception(exc)
            else:
                self._wrote(1)
                if not done.done():
                    done.set_result(None)
            del batch[0]

    def _wrote(self, rows: int) -> None:
        self._rows += rows
        if self._rows >= NUDGE_AFTER and self._checkpointer is not None:
            self._rows = 0
            self._checkpointer.nudge()

    async def update_active(self, record: StoredResponse) -> bool:
        cur = await self._sql(
            "UPDATE responses SET response = ?, status = ?, upstream_id = ?, lease_until = ?"
            f" WHERE id = ? AND {_ACTIVE}",
            (orjson.dumps(record.response), record.status, record.upstream_id, record.lease_until, record.id),
        )
        return cur.rowcount > 0

    async def get(self, response_id: str, owner: str | None = None) -> StoredResponse | None:
        cur = await self._sql(f"SELECT {_COLUMNS} FROM responses WHERE id = ? AND owner IS ?", (response_id, owner))
        row = cur.fetchone()
        return None if row is None else StoredResponse.from_row(row)

    async def delete(self, response_id: str, owner: str | None = None) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            cur = db.execute("DELETE FROM responses WHERE id = ? AND owner IS ?", (response_id, owner))
            if cur.rowcount:
                db.execute("DELETE FROM response_events WHERE response_id = ?", (response_id,))
            return cur.rowcount > 0

        return await patiently(self._transaction, work)

    async def find(self, response_id: str) -> StoredResponse | None:
        row = (await self._sql(f"SELECT {_COLUMNS} FROM responses WHERE id = ?", (response_id,))).fetchone()
        return None if row is None else StoredResponse.from_row(row)

    async def active(self, limit: int) -> list[StoredResponse]:
        cur = await self._sql(
            f"SELECT {_COLUMNS} FROM responses WHERE {_ACTIVE}"
            " AND json_extract(CAST(response AS TEXT), '$.background') ORDER BY created_at DESC LIMIT ?",
            (limit,),
        )
        return [StoredResponse.from_row(r) for r in cur.fetchall()]

    async def renew_lease(self, response_id: str, until: int) -> None:
        await self._sql("UPDATE responses SET lease_until = ? WHERE id = ?", (until, response_id))

    async def append_events(self, response_id: str, events: list[Event]) -> None:
        rows = [(response_id, seq, kind, data) for seq, kind, data in events]
        sql = "INSERT OR IGNORE INTO response_events (response_id, seq, type, data) VALUES (?, ?, ?, ?)"
        await patiently(self._transaction, lambda db: db.executemany(sql, rows))

    async def events_after(self, response_id: str, after: int) -> list[Event]:
        cur = await self._sql(
            "SELECT seq, type, data FROM response_events WHERE response_id = ? AND seq > ? ORDER BY seq",
            (response_id, after),
        )
        return [(seq, kind, bytes(data)) for seq, kind, data in cur.fetchall()]

    # -- conversations -----------------------------------------------------------------------

    async def put_conversation(self, conversation: Conversation) -> None:
        c = conversation
        await self._sql(
            "INSERT INTO conversations (id, owner, created_at, metadata, items) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET metadata = excluded.metadata",
            (c.id, c.owner, c.created_at, orjson.dumps(c.metadata), orjson.dumps(c.items)),
        )

    async def get_conversation(self, conversation_id: str, owner: str | None = None) -> Conversation | None:
        cur = await self._sql(
            "SELECT id, owner, created_at, metadata, items FROM conversations WHERE id = ? AND owner IS ?",
            (conversation_id, owner),
        )
        row = cur.fetchone()
        if row is None:
            return None
        cid, own, created, metadata, items = row
        return Conversation(cid, created, orjson.loads(metadata), orjson.loads(items), own)

    async def delete_conversation(self, conversation_id: str, owner: str | None = None) -> bool:
        cur = await self._sql("DELETE FROM conversations WHERE id = ? AND owner IS ?", (conversation_id, owner))
        return cur.rowcount > 0

    async def set_conversation_items(
        self, conversation_id: str, items: list[Json], owner: str | None = None, *, append: bool = True
    ) -> bool:
        def work(db: sqlite3.Connection) -> bool:  # read-modify-write, atomic across processes
            row = db.execute(
                "SELECT items FROM conversations WHERE id = ? AND owner IS ?", (conversation_id, owner)
            ).fetchone()
            if row is not None:
                merged = (orjson.loads(row[0]) if append else []) + items
                db.execute("UPDATE conversations SET items = ? WHERE id = ?", (orjson.dumps(merged), conversation_id))
            return row is not None

        return await patiently(self._transaction, work)

    async def subscribe(self, callback: Callable[[str], None]) -> bool:
        return False  # one process (or workers polling the file): no channel

    def listening(self) -> bool | None:
        return None

    async def publish(self, message: str) -> None:
        return None

    async def ping(self) -> None:
        (await self._sql("SELECT 1")).fetchone()

    async def close(self) -> None:
        with self._lock:
            if self._checkpointer is not None:
                self._checkpointer.close()
                self._checkpointer = None
            if self._db is not None:
                self._db.close()
                self._db = None


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
