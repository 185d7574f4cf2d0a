"""Every store keeps keys, teams and users, adds up their spend exactly, and logs spend."""

from __future__ import annotations

import os
import time

from llmrelay.store.base import Entity
from tests.unit.test_store import store  # noqa: F401  (the fixture: memory, sqlite, postgres)


def _row(request_id: str, key: str, model: str, cost: float, start: float) -> dict:
    return {"request_id": request_id, "key": key, "key_alias": None, "team_id": "t1", "user_id": None,
            "model": model, "deployment": "d", "provider": "openai", "status": "completed", "input_tokens": 3,
            "cached_tokens": 0, "output_tokens": 2, "reasoning_tokens": 0, "total_tokens": 5, "cost": cost,
            "latency_ms": 1.5, "start_time": start, "prompt": None}  # fmt: skip


async def test_entities_and_their_spend(store) -> None:  # noqa: F811
    tag = os.urandom(6).hex()
    a = Entity("key", f"a-{tag}", {"owner": "ka", "team_id": f"t-{tag}"})
    b = Entity("key", f"b-{tag}", {"owner": "kb", "team_id": f"t-{tag}"})
    assert await store.put_entity(a, create=True) and await store.put_entity(b, create=True)
    assert not await store.put_entity(a, create=True)  # ids are unique
    assert not await store.put_entity(Entity("key", f"none-{tag}", {}), create=False)
    page, total = await store.list_entities("key", where={"team_id": f"t-{tag}"}, offset=1, limit=5)
    assert total == 2 and [e.id for e in page] == [b.id]
    a.record["key_alias"] = "renamed"
    assert await store.put_entity(a, create=False)

    await store.record_spend([("key", a.id, 100, 0.25), ("key", a.id, 100, 0.5), ("key", b.id, 0, 1.0)], [])
    got = await store.get_entity("key", a.id)
    assert got.record["key_alias"] == "renamed" and got.spend == 0.75 and got.spend_in(100) == 0.75
    await store.record_spend([("key", a.id, 200, 0.125)], [])  # a new budget window starts from 0
    got = await store.get_entity("key", a.id)
    assert got.spend == 0.875 and got.spend_in(200) == 0.125 and got.spend_in(100) == 0

    assert await store.rename_entity("key", a.id, f"c-{tag}")  # a regenerated key keeps its spend
    assert await store.get_entity("key", a.id) is None
    assert (await store.get_entity("key", f"c-{tag}")).spend == 0.875
    assert await store.delete_entity("key", f"c-{tag}") and not await store.delete_entity("key", f"c-{tag}")


async def test_spend_logs_and_report(store) -> None:  # noqa: F811
    tag = os.urandom(6).hex()
    now = time.time()
    rows = [_row(f"r1-{tag}", f"k1-{tag}", "gpt", 0.5, now), _row(f"r2-{tag}", f"k1-{tag}", "claude", 0.25, now + 1),
            _row(f"r3-{tag}", f"k2-{tag}", "gpt", 1.0, now + 2)]  # fmt: skip
    rows[0]["prompt"] = {"input": "hi \x00 there"}
    await store.record_spend([], rows)
    mine = await store.spend_logs({"key": f"k1-{tag}"}, start=now, end=now + 10, limit=10)
    assert [r["request_id"] for r in mine] == [f"r2-{tag}", f"r1-{tag}"]  # newest first
    assert mine[1] == rows[0]
    by_key = await store.spend_report("key", start=now, end=now + 10)
    mine = {e["key"]: e for e in by_key if e["key"].endswith(tag)}
    assert mine[f"k1-{tag}"] == {"key": f"k1-{tag}", "spend": 0.75, "requests": 2, "total_tokens": 10}
    day = time.strftime("%Y-%m-%d", time.gmtime(now))
    assert any(e["day"] == day for e in await store.spend_report("day", start=now, end=now + 10))
