"""Response stores: where every response lives so GET, DELETE, input items and
`previous_response_id` work for every provider."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .base import ResponseStore, StoredResponse
from .memory import MemoryStore

__all__ = ["MemoryStore", "ResponseStore", "StoredResponse", "default_sqlite_path", "open_store"]


def default_sqlite_path() -> Path:
    """`<user cache dir>/llmrelay/responses.db` (XDG on Linux, Caches on macOS, LOCALAPPDATA on Windows)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "llmrelay" / "responses.db"


def open_store(url: str | None = None) -> ResponseStore:
    """A store from a URL: "memory", "postgres://..." / "postgresql://...", "sqlite:///path",
    or a plain file path. None means $LLMRELAY_STORE, else SQLite in the user's cache dir."""
    url = url or os.environ.get("LLMRELAY_STORE") or str(default_sqlite_path())
    if url in ("memory", ":memory:", "memory://"):
        return MemoryStore()
    if url.startswith(("postgres://", "postgresql://")):
        from .postgres import PostgresStore

        return PostgresStore(url)
    from .sqlite import SQLiteStore

    return SQLiteStore(url.removeprefix("sqlite://"))
