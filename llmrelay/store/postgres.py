"""Postgres store: one database shared by many proxy instances.

The schema is created or migrated on first use (`ping` at proxy startup). asyncpg pools
belong to one event loop, so there is one pool (and one LISTEN connection) per loop that
uses the store. A lost database (a restart, an outage) raises StoreUnavailable, a 503, from
every method; the pool reconnects by itself once the database is back, and the LISTEN
connection re-opens itself with backoff.

Postgres text and jsonb cannot hold NUL (U+0000), which JSON strings may. JSON documents are
written with NUL as the pair ESC "0" and ESC itself as ESC ESC (ESC: U+E000, a private-use
character), and read back through the inverse, so every string round-trips unchanged; an id
that holds NUL cannot have been stored, so looking it up finds nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

import asyncpg
import orjson

from ..batching import Batch
from .base import Conversation, Event, Json, StoredResponse, StoreUnavailable
from .postgres_batches import LOST, batcher
from .postgres_gateway import MIGRATION, PostgresGateway

log = logging.getLogger("llmrelay.store")
CHANNEL = "llmrelay"
RESYNC = "resync"  # what subscribers hear after the channel was down: messages may have been lost
CONNECT_TIMEOUT = 5.0
MAX_BACKOFF = 2.0  # seconds between attempts to re-open a lost LISTEN connection
P = ParamSpec("P")
R = TypeVar("R")


def _available(
    method: Callable[Concatenate[PostgresStore, P], Awaitable[R]],
) -> Callable[Concatenate[PostgresStore, P], Awaitable[R]]:
    @functools.wraps(method)
    async def guarded(self: PostgresStore, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(self, *args, **kwargs)
        except LOST as exc:
            log.warning("postgres store unavailable in %s: %s: %s", method.__name__, type(exc).__name__, exc)
            raise StoreUnavailable() from exc

    return guarded


SCHEMA_VERSION = 5
_MIGRATIONS = {
    1: """
    CREATE TABLE IF NOT EXISTS llmrelay_responses (
        id TEXT PRIMARY KEY,
        owner TEXT,
        deployment TEXT NOT NULL,
        upstream_id TEXT,
        previous_response_id TEXT,
        created_at BIGINT NOT NULL,
        status TEXT NOT NULL,
        response JSONB NOT NULL,
        input_items JSONB NOT NULL
    );
    """,
    2: """
    ALTER TABLE llmrelay_responses ADD COLUMN IF NOT EXISTS lease_until BIGINT;
    CREATE TABLE IF NOT EXISTS llmrelay_response_events (
        response_id TEXT NOT NULL,
        seq INT NOT NULL,
        type TEXT NOT NULL,
        data BYTEA NOT NULL,
        PRIMARY KEY (response_id, seq)
    );
    CREATE TABLE IF NOT EXISTS llmrelay_conversations (
        id TEXT PRIMARY KEY,
        owner TEXT,
        created_at BIGINT NOT NULL,
        metadata JSONB NOT NULL,
        items JSONB NOT NULL
    );
    """,
    3: """
    CREATE TABLE IF NOT EXISTS llmrelay_api_keys (
        key_hash TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        alias TEXT,
        created_at BIGINT NOT NULL
    );
    """,
    4: MIGRATION,
    # the admin page's list of running jobs: only active rows are in this index
    5: "CREATE INDEX IF NOT EXISTS llmrelay_responses_active ON llmrelay_responses (created_at)"
    " WHERE status IN ('queued', 'in_progress');",
}
_COLUMNS = (
    "id, owner, deployment, upstream_id, previous_response_id, created_at, response::text, input_items::text,"
    " lease_until"
)
_OWNER = "owner IS NOT DISTINCT FROM"
_PUT_COLUMNS = (
    "id, owner, deployment, upstream_id, previous_response_id, created_at, status, response, input_items, lease_until"
)
_PUT_CONFLICT = (
    " ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, response = EXCLUDED.response,"
    " upstream_id = EXCLUDED.upstream_id, lease_until = EXCLUDED.lease_until"
)
_PUT_ONE = (
    f"INSERT INTO llmrelay_responses ({_PUT_COLUMNS})"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb, $10)" + _PUT_CONFLICT
)
_PUT_MANY = (
    f"INSERT INTO llmrelay_responses ({_PUT_COLUMNS})"
    " SELECT id, owner, deployment, upstream_id, previous_response_id, created_at, status, response::jsonb,"
    " input_items::jsonb, lease_until FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
    f" $6::bigint[], $7::text[], $8::text[], $9::text[], $10::bigint[]) AS t({_PUT_COLUMNS})" + _PUT_CONFLICT
)

_ESC = "\ue000"
_ESC_UTF8 = _ESC.encode()
_NUL_JSON = b"\\u0000"  # how orjson writes NUL inside a string
# Left to right, an escaped backslash is consumed whole, so `\\u0000` (a backslash, then the
# text "u0000") is never read as NUL.
_ENCODE = re.compile(rb"\\\\|\\u0000|" + re.escape(_ESC_UTF8))
_DECODE = re.compile(_ESC + "(.)", re.DOTALL)


def _put_row(record: StoredResponse) -> tuple[Any, ...]:
    return (record.id, record.owner, record.deployment, record.upstream_id, record.previous_response_id,
            record.created_at, record.status, _dump(record.response), _dump(record.input_items),
            record.lease_until)  # fmt: skip


def _record(row: Any) -> StoredResponse:
    *head, response, items, lease = row
    return StoredResponse.from_row((*head, _text(response), _text(items), lease))


def _dump(value: object) -> str:
    """JSON text Postgres accepts, for any JSON value."""
    data = orjson.dumps(value)
    if _NUL_JSON in data or _ESC_UTF8 in data:
        data = _ENCODE.sub(_encode, data)
    return data.decode()


def _encode(m: re.Match[bytes]) -> bytes:
    s = m[0]
    return s if s == b"\\\\" else _ESC_UTF8 + (b"0" if s == _NUL_JSON else _ESC_UTF8)


def _text(stored: str) -> str:
    """The JSON text `_dump` was given, from what Postgres gives back."""
    return _DECODE.sub(_decode, stored) if _ESC in stored else stored


def _decode(m: re.Match[str]) -> str:
    return "\\u0000" if m[1] == "0" else m[1]


async def _keep_session(conn: asyncpg.Connection) -> None:
    """A connection going back to the pool keeps its session: this store never sets session
    state (no SET, no LISTEN on pooled connections, advisory locks only per transaction), so
    asyncpg's default reset (RESET ALL, UNLISTEN *, CLOSE ALL, unlocking advisory locks) would
    be one more round trip per call for nothing. An open transaction is still rolled back."""
    return None


class PostgresStore(PostgresGateway):
    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self._sizes = (min_size, max_size)
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncpg.Pool] = weakref.WeakKeyDictionary()
        self._migrated = False
        self._listeners: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Listener] = weakref.WeakKeyDictionary()
        self._puts = batcher(self._commit_puts, self._pool)  # group commit
        self._gets = batcher(self._fetch_gets, self._pool)

    async def _pool(self) -> asyncpg.Pool:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            pool = await asyncpg.create_pool(
                self.url,
                min_size=self._sizes[0],
                max_size=self._sizes[1],
                timeout=CONNECT_TIMEOUT,
                reset=_keep_session,
            )
            self._pools[loop] = pool
            if not self._migrated:
                await self._migrate(pool)
        return pool

    async def _migrate(self, pool: asyncpg.Pool) -> None:
        async with pool.acquire() as conn, conn.transaction():
            # One migrator at a time across instances starting together.
            await conn.execute("SELECT pg_advisory_xact_lock(7201554)")
            await conn.execute("CREATE TABLE IF NOT EXISTS llmrelay_schema (version INT NOT NULL)")
            current = await conn.fetchval("SELECT max(version) FROM llmrelay_schema") or 0
            for version in range(current + 1, SCHEMA_VERSION + 1):
                await conn.execute(_MIGRATIONS[version])
                await conn.execute("INSERT INTO llmrelay_schema (version) VALUES ($1)", version)
        self._migrated = True

    @_available
    async def put(self, record: StoredResponse) -> None:
        """Group commit: the puts of one loop turn (concurrent requests finishing together) go
        in one statement, one round trip; each put returns once its row is committed."""
        await self._puts.add(record)

    async def _commit_puts(self, conn: asyncpg.Connection, batch: Batch) -> None:
        try:
            rows = {record.id: _put_row(record) for record, _ in batch}  # one row per id: the last put wins
            if len(rows) == 1:
                await conn.execute(_PUT_ONE, *next(iter(rows.values())))
            else:
                await conn.execute(_PUT_MANY, *zip(*rows.values(), strict=True))
        except Exception as exc:
            if len(batch) == 1 or isinstance(exc, LOST):
                raise
            for entry in batch:  # nothing was written: each put goes alone, so only a failing one fails
                try:
                    await self._commit_puts(conn, [entry])
                except LOST:
                    raise
                except Exception as alone:
                    if not entry[1].done():
                        entry[1].set_exception(alone)
            return
        for _, done in batch:
            if not done.done():
                done.set_result(None)

    @_available
    async def update_active(self, record: StoredResponse) -> bool:
        pool = await self._pool()
        status = await pool.execute(
            "UPDATE llmrelay_responses SET response = $2::jsonb, status = $3, upstream_id = $4, lease_until = $5"
            " WHERE id = $1 AND status IN ('queued', 'in_progress')",
            record.id,
            _dump(record.response),
            record.status,
            record.upstream_id,
            record.lease_until,
        )
        return status.endswith(" 1")

    @_available
    async def renew_lease(self, response_id: str, until: int) -> None:
        pool = await self._pool()
        await pool.execute("UPDATE llmrelay_responses SET lease_until = $2 WHERE id = $1", response_id, until)

    @_available
    async def append_events(self, response_id: str, events: list[Event]) -> None:
        pool = await self._pool()
        await pool.executemany(
            "INSERT INTO llmrelay_response_events (response_id, seq, type, data) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING",
            [(response_id, seq, kind, data) for seq, kind, data in events],
        )

    @_available
    async def events_after(self, response_id: str, after: int) -> list[Event]:
        if "\0" in response_id:
            return []
        pool = await self._pool()
        rows = await pool.fetch(
            "SELECT seq, type, data FROM llmrelay_response_events WHERE response_id = $1 AND seq > $2 ORDER BY seq",
            response_id,
            after,
        )
        return [(r["seq"], r["type"], bytes(r["data"])) for r in rows]

    @_available
    async def put_conversation(self, conversation: Conversation) -> None:
        c = conversation
        pool = await self._pool()
        await pool.execute(
            "INSERT INTO llmrelay_conversations (id, owner, created_at, metadata, items)"
            " VALUES ($1, $2, $3, $4::jsonb, $5::jsonb) ON CONFLICT (id) DO UPDATE SET metadata = EXCLUDED.metadata",
            c.id,
            c.owner,
            c.created_at,
            _dump(c.metadata),
            _dump(c.items),
        )

    @_available
    async def get_conversation(self, conversation_id: str, owner: str | None = None) -> Conversation | None:
        if "\0" in conversation_id:
            return None
        pool = await self._pool()
        row = await pool.fetchrow(
            "SELECT id, owner, created_at, metadata::text, items::text FROM llmrelay_conversations"
            f" WHERE id = $1 AND {_OWNER} $2",
            conversation_id,
            owner,
        )
        if row is None:
            return None
        cid, own, created, metadata, items = row
        return Conversation(cid, created, orjson.loads(_text(metadata)), orjson.loads(_text(items)), own)

    @_available
    async def delete_conversation(self, conversation_id: str, owner: str | None = None) -> bool:
        if "\0" in conversation_id:
            return False
        pool = await self._pool()
        status = await pool.execute(
            f"DELETE FROM llmrelay_conversations WHERE id = $1 AND {_OWNER} $2", conversation_id, owner
        )
        return status.endswith(" 1")

    @_available
    async def set_conversation_items(
        self, conversation_id: str, items: list[Json], owner: str | None = None, *, append: bool = True
    ) -> bool:
        if "\0" in conversation_id:
            return False
        pool = await self._pool()
        value = "items || $3::jsonb" if append else "$3::jsonb"  # || appends atomically, in one statement
        status = await pool.execute(
            f"UPDATE llmrelay_conversations SET items = {value} WHERE id = $1 AND {_OWNER} $2",
            conversation_id,
            owner,
            _dump(items),
        )
        return status.endswith(" 1")

    @_available
    async def get(self, response_id: str, owner: str | None = None) -> StoredResponse | None:
        """The gets of one loop turn are read in one query (one round trip), as puts are written."""
        if "\0" in response_id:
            return None
        row = await self._gets.add(response_id)
        # each caller gets a record of its own: callers change them
        return None if row is None or row["owner"] != owner else _record(row)

    async def _fetch_gets(self, conn: asyncpg.Connection, batch: Batch) -> None:
        if len(batch) == 1:
            rows = await conn.fetch(f"SELECT {_COLUMNS} FROM llmrelay_responses WHERE id = $1", batch[0][0])
        else:
            ids = list({rid: None for rid, _ in batch})
            rows = await conn.fetch(f"SELECT {_COLUMNS} FROM llmrelay_responses WHERE id = ANY($1::text[])", ids)
        by_id = {row["id"]: row for row in rows}
        for rid, found in batch:
            if not found.done():
                found.set_result(by_id.get(rid))

    @_available
    async def find(self, response_id: str) -> StoredResponse | None:
        if "\0" in response_id:
            return None
        pool = await self._pool()
        row = await pool.fetchrow(f"SELECT {_COLUMNS} FROM llmrelay_responses WHERE id = $1", response_id)
        return None if row is None else _record(row)

    @_available
    async def active(self, limit: int) -> list[StoredResponse]:
        pool = await self._pool()
        rows = await pool.fetch(
            f"SELECT {_COLUMNS} FROM llmrelay_responses WHERE status IN ('queued', 'in_progress')"
            " AND response->'background' = 'true' ORDER BY created_at DESC LIMIT $1",
            limit,
        )
        return [_record(r) for r in rows]

    @_available
    async def delete(self, response_id: str, owner: str | None = None) -> bool:
        if "\0" in response_id:
            return False
        pool = await self._pool()
        status = await pool.execute(f"DELETE FROM llmrelay_responses WHERE id = $1 AND {_OWNER} $2", response_id, owner)
        if status.endswith(" 1"):
            await pool.execute("DELETE FROM llmrelay_response_events WHERE response_id = $1", response_id)
        return status.endswith(" 1")

    @_available
    async def subscribe(self, callback: Callable[[str], None]) -> bool:
        """LISTEN on one dedicated connection (per loop) for the other instances' NOTIFYs."""
        loop = asyncio.get_running_loop()
        listener = self._listeners.get(loop)
        if listener is None:
            listener = _Listener(self.url)
            await listener.open()
            self._listeners[loop] = listener
        listener.callbacks.append(callback)
        return True

    def listening(self) -> bool | None:
        try:
            listener = self._listeners.get(asyncio.get_running_loop())
        except RuntimeError:
            return None
        return None if listener is None else listener.up

    @_available
    async def publish(self, message: str) -> None:
        pool = await self._pool()
        await pool.execute("SELECT pg_notify($1, $2)", CHANNEL, message)

    @_available
    async def ping(self) -> None:
        pool = await self._pool()
        await pool.fetchval("SELECT 1")

    async def close(self) -> None:
        await self._puts.close()  # their kept connections back first: closing waits for them
        await self._gets.close()
        loop = asyncio.get_running_loop()
        pool = self._pools.pop(loop, None)
        if pool is not None:
            await pool.close()
        listener = self._listeners.pop(loop, None)
        if listener is not None:
            await listener.close()


for _name in ("put_entity", "get_entity", "list_entities", "delete_entity", "rename_entity", "record_spend",
              "spend_logs", "spend_report"):  # fmt: skip
    setattr(PostgresStore, _name, _available(getattr(PostgresGateway, _name)))


class _Listener:
    """One LISTEN connection that re-opens itself, with backoff, whenever it is lost. After a
    re-open the callbacks hear RESYNC: whatever was published meanwhile never arrived."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.callbacks: list[Callable[[str], None]] = []
        self._conn: asyncpg.Connection | None = None
        self._reopen: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def up(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def open(self) -> None:
        conn = await asyncpg.connect(self.url, timeout=CONNECT_TIMEOUT)
        try:
            await conn.add_listener(CHANNEL, self._deliver)
        except BaseException:
            conn.terminate()
            raise
        conn.add_termination_listener(self._lost)
        self._conn = conn

    def _deliver(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        for callback in self.callbacks:
            callback(payload)

    def _lost(self, _conn: Any) -> None:
        self._conn = None
        if not self._closed and (self._reopen is None or self._reopen.done()):
            log.warning("postgres LISTEN connection lost; re-opening it")
            self._reopen = asyncio.get_running_loop().create_task(self._reopen_until_up())

    async def _reopen_until_up(self) -> None:
        delay = 0.1
        while not self._closed:
            try:
                await self.open()
            except LOST as exc:
                log.debug("postgres LISTEN connection not re-opened yet: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)
                continue
            log.warning("postgres LISTEN connection re-opened")
            self._deliver(None, 0, CHANNEL, RESYNC)
            return

    async def close(self) -> None:
        self._closed = True
        if self._reopen is not None:
            self._reopen.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reopen
        if self._conn is not None:
            with contextlib.suppress(*LOST):
                await self._conn.close(timeout=CONNECT_TIMEOUT)
