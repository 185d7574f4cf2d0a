"""Postgres store: one database shared by many proxy instances.

The schema is created or migrated on first use (`ping` at proxy startup). asyncpg pools
belong to one event loop, so there is one pool per loop that uses the store.
"""

from __future__ import annotations

import asyncio
import weakref

import asyncpg
import orjson

from .base import StoredResponse

SCHEMA_VERSION = 1
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
}
_COLUMNS = "id, owner, deployment, upstream_id, previous_response_id, created_at, response::text, input_items::text"


class PostgresStore:
    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self._sizes = (min_size, max_size)
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncpg.Pool] = weakref.WeakKeyDictionary()
        self._migrated = False

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
            " status, response, input_items) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb)"
            " ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, response = EXCLUDED.response,"
            " upstream_id = EXCLUDED.upstream_id",
            record.id,
            record.owner,
            record.deployment,
            record.upstream_id,
            record.previous_response_id,
            record.created_at,
            record.status,
            orjson.dumps(record.response).decode(),
            orjson.dumps(record.input_items).decode(),
        )

    async def get(self, response_id: str, owner: str | None = None) -> StoredResponse | None:
        pool = await self._pool()
        row = await pool.fetchrow(
            f"SELECT {_COLUMNS} FROM llmrelay_responses WHERE id = $1 AND owner IS NOT DISTINCT FROM $2",
            response_id,
            owner,
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
        pool = await self._pool()
        status = await pool.execute(
            "DELETE FROM llmrelay_responses WHERE id = $1 AND owner IS NOT DISTINCT FROM $2", response_id, owner
        )
        return status.endswith(" 1")

    async def ping(self) -> None:
        pool = await self._pool()
        await pool.fetchval("SELECT 1")

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        pool = self._pools.pop(loop, None)
        if pool is not None:
            await pool.close()
