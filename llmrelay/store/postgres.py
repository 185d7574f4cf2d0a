"""Postgres store: one database shared by many proxy instances.

The schema is created or migrated on first use (`ping` at proxy startup). asyncpg pools
belong to one event loop, so there is one pool per loop that uses the store.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable

import asyncpg
import orjson

from .base import Conversation, Event, Json, StoredResponse

CHANNEL = "llmrelay"
SCHEMA_VERSION = 3
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
}
_COLUMNS = (
    "id, owner, deployment, upstream_id, previous_response_id, created_at, response::text, input_items::text,"
    " lease_until"
)
_OWNER = "owner IS NOT DISTINCT FROM"


class PostgresStore:
    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self._sizes = (min_size, max_size)
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncpg.Pool] = weakref.WeakKeyDictionary()
        self._migrated = False
        self._listeners: list[asyncpg.Connection] = []

    async def _pool(self) -> asyncpg.Pool:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            pool = await asyncpg.create_pool(self.url, min_size=self._sizes[0], max_size=self._sizes[1])
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

    async def put(self, record: StoredResponse) -> None:
        pool = await self._pool()
        await pool.execute(
            "INSERT INTO llmrelay_responses (id, owner, deployment, upstream_id, previous_response_id, created_at,"
            " status, response, input_items, lease_until)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb, $10)"
            " ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, response = EXCLUDED.response,"
            " upstream_id = EXCLUDED.upstream_id, lease_until = EXCLUDED.lease_until",
            record.id,
            record.owner,
            record.deployment,
            record.upstream_id,
            record.previous_response_id,
            record.created_at,
            record.status,
            orjson.dumps(record.response).decode(),
            orjson.dumps(record.input_items).decode(),
            record.lease_until,
        )

    async def update_active(self, record: StoredResponse) -> bool:
        pool = await self._pool()
        status = await pool.execute(
            "UPDATE llmrelay_responses SET response = $2::jsonb, status = $3, upstream_id = $4, lease_until = $5"
            " WHERE id = $1 AND status IN ('queued', 'in_progress')",
            record.id,
            orjson.dumps(record.response).decode(),
            record.status,
            record.upstream_id,
            record.lease_until,
        )
        return status.endswith(" 1")

    async def renew_lease(self, response_id: str, until: int) -> None:
        pool = await self._pool()
        await pool.execute("UPDATE llmrelay_responses SET lease_until = $2 WHERE id = $1", response_id, until)

    async def append_events(self, response_id: str, events: list[Event]) -> None:
        pool = await self._pool()
        await pool.executemany(
            "INSERT INTO llmrelay_response_events (response_id, seq, type, data) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING",
            [(response_id, seq, kind, data) for seq, kind, data in events],
        )

    async def events_after(self, response_id: str, after: int) -> list[Event]:
        pool = await self._pool()
        rows = await pool.fetch(
            "SELECT seq, type, data FROM llmrelay_response_events WHERE response_id = $1 AND seq > $2 ORDER BY seq",
            response_id,
            after,
        )
        return [(r["seq"], r["type"], bytes(r["data"])) for r in rows]

    async def put_conversation(self, conversation: Conversation) -> None:
        c = conversation
        pool = await self._pool()
        await pool.execute(
            "INSERT INTO llmrelay_conversations (id, owner, created_at, metadata, items)"
            " VALUES ($1, $2, $3, $4::jsonb, $5::jsonb) ON CONFLICT (id) DO UPDATE SET metadata = EXCLUDED.metadata",
            c.id,
            c.owner,
            c.created_at,
            orjson.dumps(c.metadata).decode(),
            orjson.dumps(c.items).decode(),
        )

    async def get_conversation(self, conversation_id: str, owner: str | None = None) -> Conversation | None:
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
        return Conversation(cid, created, orjson.loads(metadata), orjson.loads(items), own)

    async def delete_conversation(self, conversation_id: str, owner: str | None = None) -> bool:
        pool = await self._pool()
        status = await pool.execute(
            f"DELETE FROM llmrelay_conversations WHERE id = $1 AND {_OWNER} $2", conversation_id, owner
        )
        return status.endswith(" 1")

    async def set_conversation_items(
        self, conversation_id: str, items: list[Json], owner: str | None = None, *, append: bool = True
    ) -> bool:
        pool = await self._pool()
        value = "items || $3::jsonb" if append else "$3::jsonb"  # || appends atomically, in one statement
        status = await pool.execute(
            f"UPDATE llmrelay_conversations SET items = {value} WHERE id = $1 AND {_OWNER} $2",
            conversation_id,
            owner,
            orjson.dumps(items).decode(),
        )
        return status.endswith(" 1")

    async def get(self, response_id: str, owner: str | None = None) -> StoredResponse | None:
        pool = await self._pool()
        row = await pool.fetchrow(
            f"SELECT {_COLUMNS} FROM llmrelay_responses WHERE id = $1 AND {_OWNER} $2",
            response_id,
            owner,
        )
        if row is None:
            return None
        return StoredResponse.from_row(row)

    async def delete(self, response_id: str, owner: str | None = None) -> bool:
        pool = await self._pool()
        status = await pool.execute(f"DELETE FROM llmrelay_responses WHERE id = $1 AND {_OWNER} $2", response_id, owner)
        if status.endswith(" 1"):
            await pool.execute("DELETE FROM llmrelay_response_events WHERE response_id = $1", response_id)
        return status.endswith(" 1")

    async def add_key(self, key_hash: str, owner: str, alias: str | None) -> None:
        pool = await self._pool()
        await pool.execute(
            "INSERT INTO llmrelay_api_keys (key_hash, owner, alias, created_at) VALUES ($1, $2, $3, $4)",
            key_hash,
            owner,
            alias,
            int(time.time()),
        )

    async def key_owner(self, key_hash: str) -> str | None:
        pool = await self._pool()
        return await pool.fetchval("SELECT owner FROM llmrelay_api_keys WHERE key_hash = $1", key_hash)

    async def delete_key(self, key_hash: str) -> bool:
        pool = await self._pool()
        return (await pool.execute("DELETE FROM llmrelay_api_keys WHERE key_hash = $1", key_hash)).endswith(" 1")

    async def subscribe(self, callback: Callable[[str], None]) -> bool:
        """LISTEN on one dedicated connection (per loop) for the other instances' NOTIFYs."""
        conn = await asyncpg.connect(self.url)
        await conn.add_listener(CHANNEL, lambda _c, _pid, _ch, payload: callback(payload))
        self._listeners.append(conn)
        return True

    async def publish(self, message: str) -> None:
        pool = await self._pool()
        await pool.execute("SELECT pg_notify($1, $2)", CHANNEL, message)

    async def ping(self) -> None:
        pool = await self._pool()
        await pool.fetchval("SELECT 1")

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        pool = self._pools.pop(loop, None)
        if pool is not None:
            await pool.close()
        for conn in self._listeners:
            await conn.close()
        self._listeners.clear()
