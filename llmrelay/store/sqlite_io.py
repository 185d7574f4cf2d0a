"""How the SQLite store touches the file without stalling its event loop.

Two things in SQLite block the calling thread for as long as they take, and the store's calls
run on the event loop, where a block stalls every request of the worker:

- waiting for another connection's write lock (another worker, a backup, the sqlite3 shell):
  SQLite's busy handler sleeps in the thread. The store's connection waits for no lock; a
  statement that meets one raises `Busy`, and `patiently` tries it again after a pause on the
  loop, for up to `BUSY_TIMEOUT`.
- copying the write-ahead log back into the database file (a checkpoint, fsyncs included),
  which SQLite runs inside whichever commit crosses 1,000 pages. The store's connection never
  checkpoints; a `Checkpointer` thread with a connection of its own does.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from .base import StoreUnavailable

T = TypeVar("T")
BUSY_TIMEOUT = 5.0  # seconds a statement waits for another connection's lock before the store is unavailable
FIRST_PAUSE, LAST_PAUSE = 0.0005, 0.002  # the pauses between tries: the holder may only be waiting for a core
CHECKPOINT_EVERY = 1.0  # seconds between the checkpointer's rounds when no commit asks for one sooner
log = logging.getLogger("llmrelay")


class Busy(Exception):
    """Another connection holds the lock this statement needs: try again shortly."""


def failure(exc: sqlite3.OperationalError) -> Exception:
    """What an operational error means to the store's callers."""
    if exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY:
        return Busy()
    text = str(exc).lower()
    # a full disk, a failing disk, a file gone: out of reach for now (a 503 to retry), not broken
    if any(words in text for words in ("locked", "disk is full", "disk i/o", "unable to open")):
        log.warning("sqlite store unavailable: %s", exc)
        return StoreUnavailable()
    return exc


async def patiently(call: Callable[..., T], *args: object) -> T:
    """`call(*args)` now, or, while it meets another connection's lock, again after a pause that
    grows from FIRST_PAUSE to LAST_PAUSE; after BUSY_TIMEOUT the store is unavailable."""
    try:
        return call(*args)
    except Busy:
        pass
    deadline = time.monotonic() + BUSY_TIMEOUT
    pause = FIRST_PAUSE
    while True:
        await asyncio.sleep(pause)
        try:
            return call(*args)
        except Busy:
            if time.monotonic() >= deadline:
                warn_locked_out()
                raise StoreUnavailable() from None
            pause = next_pause(pause)


def next_pause(pause: float) -> float:
    return min(pause * 2, LAST_PAUSE)


def warn_locked_out() -> None:
    log.warning("sqlite store unavailable: the database stayed locked for %.0f s", BUSY_TIMEOUT)


class Checkpointer:
    """A thread that checkpoints the database's write-ahead log (PASSIVE: it waits for no reader or
    writer) every CHECKPOINT_EVERY seconds, or sooner when `nudge`d by a busy writer."""

    def __init__(self, path: Path) -> None:
        self._due = threading.Event()
        self._closed = False
        name = "llmrelay-sqlite-checkpoint"
        threading.Thread(target=self._rounds, args=(path,), name=name, daemon=True).start()

    def nudge(self) -> None:
        self._due.set()

    def close(self) -> None:
        self._closed = True
        self._due.set()

    def _rounds(self, path: Path) -> None:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT)
        try:
            db.execute("PRAGMA synchronous=NORMAL")
            while not self._closed:
                self._due.wait(CHECKPOINT_EVERY)
                self._due.clear()
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # the next round tries again; the WAL only grows meanwhile
                    log.warning("sqlite checkpoint failed: %s", exc)
        finally:
            db.close()
