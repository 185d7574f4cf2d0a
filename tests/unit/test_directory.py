"""The key cache: a change on one instance drops the key from another's cache at once (Postgres
NOTIFY), not only when its TTL runs out."""

from __future__ import annotations

import asyncio
import os

from llmrelay.gateway.directory import Directory
from llmrelay.store.base import Entity
from llmrelay.store.postgres import PostgresStore
from tests.unit.test_store import PG_URL


async def test_a_change_reaches_the_other_instance_through_the_channel() -> None:
    a, b = PostgresStore(PG_URL), PostgresStore(PG_URL)
    here, there = Directory(a), Directory(b)
    key_id = f"k-{os.urandom(6).hex()}"
    await a.put_entity(Entity("key", key_id, {"owner": "o", "models": ["x"]}), create=True)
    assert (await there.caller(key_id)) is not None  # cached there, and subscribed
    assert key_id in there._cache
    await here.changed("key", key_id)
    async with asyncio.timeout(5):  # far shorter than waiting for expiry would need: the entry is gone
        while key_id in there._cache:
            await asyncio.sleep(0.01)
    await a.close()
    await b.close()


async def test_a_cached_key_is_reread_after_its_ttl(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from llmrelay.gateway import directory
    from llmrelay.store import MemoryStore

    store = MemoryStore()
    d = Directory(store)
    await store.put_entity(Entity("key", "k", {"owner": "o"}), create=True)
    first = await d.caller("k")
    assert await d.caller("k") is first  # a hit: no read
    monkeypatch.setattr(directory, "TTL", 0.0)
    assert await d.caller("k") is not first
    await store.delete_entity("key", "k")
    assert await d.caller("k") is None
