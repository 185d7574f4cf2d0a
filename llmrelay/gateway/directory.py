"""Who a virtual key is: its record, its user's and its team's, cached in process.

A key is read from the store at most once per TTL per process; an update, delete, block or
regenerate anywhere drops it from every instance's cache at once (the store's channel:
Postgres NOTIFY), and the TTL bounds staleness where there is no channel (SQLite workers).
The cache also carries each entity's spend as last read plus what this process has written
since, which is what budgets are checked against.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from ..store import ResponseStore
from ..store.base import Entity

TTL = 1.0  # seconds a cached key (with its user and team) is trusted without a channel message
MAX_CACHED = 10_000
PREFIX = "sk-llmrelay-"
_CHANNEL = "gateway:"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(slots=True)
class Caller:
    """A virtual key with its user and team, as they were read at `loaded` (monotonic)."""

    key: Entity
    user: Entity | None
    team: Entity | None
    loaded: float
    all: list[Entity] = field(default_factory=list)  # key, user, team: the ones there are
    derived: dict[str, Any] = field(default_factory=dict)  # what stages compute once per cached key

    def __post_init__(self) -> None:
        self.all = [e for e in (self.key, self.user, self.team) if e is not None]

    @property
    def owner(self) -> str:
        """Whom the key's responses belong to: stable across a regenerate."""
        return str(self.key.record.get("owner") or self.key.id)

    def entities(self) -> list[Entity]:
        return self.all


class Directory:
    def __init__(self, store: ResponseStore) -> None:
        self.store = store
        self._cache: dict[str, Caller] = {}
        # (kind, id) -> the cached callers that hold that entity, so a charge finds them directly
        self._holders: dict[tuple[str, str], list[Caller]] = {}
        self._subscribed = False

    async def caller(self, key_hash: str) -> Caller | None:
        now = time.monotonic()
        hit = self._cache.get(key_hash)
        if hit is not None and now - hit.loaded < TTL:
            return hit
        if not self._subscribed:
            self._subscribed = True
            await self.store.subscribe(self._on_message)
        key = await self.store.get_entity("key", key_hash)
        if key is None:
            self._cache.pop(key_hash, None)
            return None
        user_id, team_id = key.record.get("user_id"), key.record.get("team_id")
        user = await self.store.get_entity("user", user_id) if user_id else None
        team = await self.store.get_entity("team", team_id) if team_id else None
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
            self._holders.clear()
        # loaded: after the reads, so "loaded before a spend write started" means "read without it"
        caller = self._cache[key_hash] = Caller(key, user, team, time.monotonic())
        for e in caller.all:
            held = [c for c in self._holders.get((e.kind, e.id), ()) if self._cache.get(c.key.id) is c]
            self._holders[(e.kind, e.id)] = [*held, caller]
        return caller

    async def changed(self, kind: str, entity_id: str) -> None:
        """An entity was updated or deleted here: forget it here and on every other instance."""
        self._forget(kind, entity_id)
        await self.store.publish(f"{_CHANNEL}{kind}:{entity_id}")

    def charged(self, kind: str, entity_id: str, window: int, amount: float, *, read_before: float) -> None:
        """Spend this process stored (the write started at `read_before`): count it in the cached
        entities read before then, which cannot hold it; later reads may, and are left alone."""
        for caller in self._holders.get((kind, entity_id), ()):
            if caller.loaded >= read_before or self._cache.get(caller.key.id) is not caller:
                continue
            for e in caller.entities():
                if e.kind == kind and e.id == entity_id:
                    e.window_spend = (e.window_spend if e.window_start == window else 0.0) + amount
                    e.window_start = window
                    e.spend += amount

    def _forget(self, kind: str, entity_id: str) -> None:
        self._holders.pop((kind, entity_id), None)
        if kind == "key":
            self._cache.pop(entity_id, None)
        else:  # a user or team: every key that points at it
            self._cache = {
                h: c for h, c in self._cache.items() if not any(e.id == entity_id for e in (c.user, c.team) if e)
            }

    def _on_message(self, message: str) -> None:
        if message.startswith(_CHANNEL):
            kind, _, entity_id = message.removeprefix(_CHANNEL).partition(":")
            self._forget(kind, entity_id)
        elif message == "resync":  # the channel was down: changes may have been missed
            self._cache.clear()
            self._holders.clear()
