"""Group commit and batched reads for the Postgres store.

The puts (or the gets) of one loop turn go in one statement, one round trip. Each kind runs one
batch at a time per event loop, on a connection it keeps: what comes while a batch is under
way waits for it and goes with the next, so under load batches grow instead of round trips.
Keeping the connection matters as much: asyncpg's pool spends about 45 µs of CPU lending a
connection and taking it back (a shielded task per release), as much as the query itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

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
Batch = list[tuple[Any, asyncio.Future[Any]]]  # (item, the future its caller awaits)
# Runs one batch on a connection: settles every future, or raises for those it left unsettled.
Run = Callable[[asyncpg.Connection, Batch], Awaitable[None]]


class _OnLoop:
    """One loop's share of a Batcher."""

    __slots__ = ("busy", "conn", "pending", "pool")

    def __init__(self) -> None:
        self.pending: Batch | None = None  # the next batch, filling up
        self.busy = False  # a batch is under way
        self.conn: Any = None  # the connection kept for this kind (asyncpg's pool proxy)
        self.pool: asyncpg.Pool | None = None


class Batcher:
    def __init__(self, run: Run, pool: Callable[[], Awaitable[asyncpg.Pool]]) -> None:
        self._run = run
        self._pool = pool
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _OnLoop] = weakref.WeakKeyDictionary()
        self._tasks: set[asyncio.Task[None]] = set()  # held until done: a task nobody references may vanish

    def add(self, item: Any) -> asyncio.Future[Any]:
        """`item` joins this loop's next batch; the future is what the batch answers for it."""
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None:
            state = self._loops[loop] = _OnLoop()
        if state.pending is None:
            state.pending = []
            if not state.busy:
                loop.call_soon(self._start, loop, state)
        done = loop.create_future()
        state.pending.append((item, done))
        return done

    def _start(self, loop: asyncio.AbstractEventLoop, state: _OnLoop) -> None:
        batch, state.pending = state.pending or [], None
        state.busy = True
        task = loop.create_task(self._batch(state, batch))
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._done(t, loop, state))

    def _done(self, task: asyncio.Task[None], loop: asyncio.AbstractEventLoop, state: _OnLoop) -> None:
        self._tasks.discard(task)
        state.busy = False
        if state.pending is not None:  # it came while the last one was under way
            self._start(loop, state)

    async def _batch(self, state: _OnLoop, batch: Batch) -> None:
        try:
            await self._run(await self._connection(state), batch)
        except BaseException as exc:
            if not isinstance(exc, Exception) or isinstance(exc, LOST):  # cancelled mid-query, or lost
                await self._discard(state)
            for _, done in batch:
                if not done.done():
                    if isinstance(exc, Exception):
                        done.set_exception(exc)
                    else:
                        done.cancel()
            if not isinstance(exc, Exception):
                raise

    async def _connection(self, state: _OnLoop) -> Any:
        if state.conn is not None and state.conn.is_closed():
            await self._discard(state)
        if state.conn is None:
            state.pool = await self._pool()
            state.conn = await state.pool.acquire()
        return state.conn

    async def _discard(self, state: _OnLoop) -> None:
        """Give the kept connection back, closed: the pool opens a new one when next asked."""
        conn, pool, state.conn = state.conn, state.pool, None
        if conn is not None and pool is not None:
            with contextlib.suppress(Exception):
                conn.terminate()
                await pool.release(conn)

    async def close(self) -> None:
        """This loop's kept connection back to its pool, before the pool closes."""
        state = self._loops.get(asyncio.get_running_loop())
        if state is not None and state.conn is not None:
            conn, pool, state.conn = state.conn, state.pool, None
            assert pool is not None
            with contextlib.suppress(*LOST):
                await pool.release(conn)
