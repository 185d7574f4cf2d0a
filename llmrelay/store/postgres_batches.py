"""The Postgres side of batching (llmrelay/batching.py): what a lost database raises, and the
connections batches keep, taken from the loop's asyncpg pool."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from ..batching import Batcher, Run

# What a lost or unreachable database raises; anything else is a bug and stays a 500.
LOST = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.InsufficientResourcesError,
    # a connection broken under a query: the pool's reset on release finds it mid-operation
    asyncpg.InternalClientError,
)


class _PoolKeeper:
    def __init__(self, pool: Callable[[], Awaitable[asyncpg.Pool]]) -> None:
        self._pool = pool
        self._lenders: dict[int, asyncpg.Pool] = {}  # id of a kept connection: the pool it came from

    async def take(self) -> Any:
        pool = await self._pool()
        conn = await pool.acquire()
        self._lenders[id(conn)] = pool
        return conn

    def usable(self, conn: Any) -> bool:
        return not conn.is_closed()

    async def give_back(self, conn: Any, *, broken: bool) -> None:
        pool = self._lenders.pop(id(conn))
        if broken:
            conn.terminate()
        await pool.release(conn)


def batcher(run: Run, pool: Callable[[], Awaitable[asyncpg.Pool]]) -> Batcher:
    """Batches of `run` on connections kept from the loop's pool (`pool()`)."""
    return Batcher(run, _PoolKeeper(pool), LOST)
