"""One long-lived event loop on a daemon thread, driving the async core for the sync SDK.

Every sync call is one hop onto this loop (no thread pool, no new loop per call), so
connection pools and the store stay warm between calls. Fork-safe: a child process
starts its own loop on first use instead of inheriting a dead thread.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class BackgroundLoop:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._loop = None
        self._lock = threading.Lock()

    def loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is not None:
            return loop
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                thread = threading.Thread(target=self._run, args=(loop, ready), name="llmrelay-loop", daemon=True)
                thread.start()
                ready.wait()
                self._loop = loop
                atexit.register(self._shutdown, loop)
            return self._loop

    @staticmethod
    def _shutdown(loop: asyncio.AbstractEventLoop) -> None:
        # Finalise live async generators (they close pooled HTTP sessions) before exit.
        if loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(loop.shutdown_asyncgens(), loop).result(timeout=2)

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop()).result()

    def iterate(self, agen: AsyncIterator[T]) -> SyncIterator[T]:
        return SyncIterator(self, agen)


class SyncIterator(Iterator[T]):
    """A sync view of an async iterator that lives on the background loop."""

    def __init__(self, runner: BackgroundLoop, agen: AsyncIterator[T]) -> None:
        self._runner = runner
        self._agen = agen
        self._done = False

    def __iter__(self) -> SyncIterator[T]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        try:
            return self._runner.run(_anext(self._agen))
        except StopAsyncIteration:
            self._done = True
            raise StopIteration from None

    def close(self) -> None:
        if not self._done:
            self._done = True
            aclose = getattr(self._agen, "aclose", None)
            if aclose is not None:
                self._runner.run(aclose())

    def __enter__(self) -> SyncIterator[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _anext(agen: AsyncIterator[T]) -> T:
    return await agen.__anext__()
