import asyncio
import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llmrelay.store import MemoryStore, StoredResponse, open_store
from llmrelay.store.base import Conversation, Entity, StoreUnavailable, page_items
from llmrelay.store.postgres import PostgresStore
from llmrelay.store.sqlite import SQLiteStore
from tests.fakes.process import free_port

PG_URL = os.environ.get("LLMRELAY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "sqlite":
        yield SQLiteStore(tmp_path / "r.db")
    else:
        pg = PostgresStore(PG_URL)
        await pg.ping()
        yield pg
        await pg.close()


async def test_put_get_delete_and_owner_scoping(store) -> None:
    rid = f"resp_{os.urandom(8).hex()}"
    rec = StoredResponse(id=rid, response={"id": rid, "status": "completed"}, owner="k1",
                         input_items=[{"id": "msg_1"}], deployment="dep")  # fmt: skip
    await store.put(rec)
    assert (await store.get(rid, "k1")).input_items == [{"id": "msg_1"}]
    assert await store.get(rid, "k2") is None
    assert await store.get(rid) is None
    rec.response["status"] = "cancelled"
    await store.put(rec)  # an update, not a second row
    assert (await store.get(rid, "k1")).status == "cancelled"
    assert not await store.delete(rid, "k2")
    assert await store.delete(rid, "k1")
    assert await store.get(rid, "k1") is None


async def test_find_any_owner_and_list_active_background_jobs(store) -> None:
    tag = os.urandom(6).hex()
    rows = {
        "job": ({"status": "queued", "background": True}, "k1", 2_000_000_000),
        "running": ({"status": "in_progress", "background": True}, None, 2_000_000_001),
        "done": ({"status": "completed", "background": True}, "k1", 2_000_000_002),
        "plain": ({"status": "in_progress", "background": False}, "k2", 2_000_000_003),
    }
    for name, (response, owner, created) in rows.items():
        rid = f"resp_{name}_{tag}"
        await store.put(StoredResponse(id=rid, response={"id": rid, **response}, owner=owner, deployment="dep",
                                       created_at=created, input_items=[{"id": f"msg_{name}"}]))  # fmt: skip
    found = await store.find(f"resp_job_{tag}")
    assert found.owner == "k1" and found.input_items == [{"id": "msg_job"}]  # whoever owns it
    assert await store.find(f"resp_nothing_{tag}") is None
    mine = [r.id for r in await store.active(1000) if r.id.endswith(tag)]
    assert mine == [f"resp_running_{tag}", f"resp_job_{tag}"]  # newest first; finished and foreground left out
    assert len(await store.active(1)) == 1
    for name in rows:
        await store.delete(f"resp_{name}_{tag}", rows[name][1])


def test_open_store_urls(tmp_path: Path) -> None:
    assert isinstance(open_store("memory"), MemoryStore)
    assert isinstance(open_store(str(tmp_path / "x.db")), SQLiteStore)
    assert isinstance(open_store(f"sqlite://{tmp_path}/y.db"), SQLiteStore)


def test_sqlite_survives_a_process_restart(tmp_path: Path) -> None:
    db = tmp_path / "restart.db"
    create = (
        f"import llmrelay; llmrelay.configure(store={str(db)!r});"
        "r = llmrelay.responses(model='openai/o1-pro', input='hi', mock_response='Kept on disk.'); print(r.id)"
    )
    rid = subprocess.run([sys.executable, "-c", create], check=True, capture_output=True, text=True).stdout.strip()
    read = f"import llmrelay; llmrelay.configure(store={str(db)!r}); print(llmrelay.get_responses({rid!r}).output_text)"
    out = subprocess.run([sys.executable, "-c", read], check=True, capture_output=True, text=True).stdout.strip()
    assert out == "Kept on disk."
    assert SQLiteStore(db)._conn().execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_page_items_cursors() -> None:
    items = [{"id": f"i{n}"} for n in range(5)]
    page = page_items(items, limit=2)
    assert [i["id"] for i in page["data"]] == ["i4", "i3"] and page["has_more"]
    page = page_items(items, limit=2, after="i3")
    assert [i["id"] for i in page["data"]] == ["i2", "i1"] and page["has_more"]
    page = page_items(items, order="asc", after="i1", before="i4")
    assert [i["id"] for i in page["data"]] == ["i2", "i3"] and not page["has_more"]
    assert page["first_id"] == "i2" and page["last_id"] == "i3"


# Strings Postgres text and jsonb cannot hold as they are, and the escape character its store
# uses for them: every one must come back unchanged, in keys and values.
AWKWARD = ["nul \x00 here", "\x00", "esc \ue000 alone", "\ue0000 looks encoded", "\ue000\ue000", "\\u0000 as text",
           "\\\x00", "\x00\ue000\x00"]  # fmt: skip


async def test_nul_and_the_escape_character_round_trip(store) -> None:
    rid = f"resp_{os.urandom(8).hex()}"
    response = {"id": rid, "status": "completed", "output": [{"type": "message", "text": s} for s in AWKWARD],
                "metadata": {s: s for s in AWKWARD}}  # fmt: skip
    items = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": s}]} for s in AWKWARD]
    await store.put(StoredResponse(id=rid, response=response, input_items=items, owner="k1"))
    got = await store.get(rid, "k1")
    assert got.response == response and got.input_items == items
    await store.update_active(StoredResponse(id=rid, response={**response, "status": "queued"}, owner="k1"))

    cid = f"conv_{os.urandom(8).hex()}"
    await store.put_conversation(Conversation(cid, 1, {"k": AWKWARD[0]}, items[:2], "k1"))
    assert await store.set_conversation_items(cid, items[2:], "k1")
    conv = await store.get_conversation(cid, "k1")
    assert conv.metadata == {"k": AWKWARD[0]} and conv.items == items
    record = {"owner": "k1", "key_alias": AWKWARD[0], "metadata": {s: s for s in AWKWARD}}
    key = Entity("key", f"hash-{os.urandom(8).hex()}", record)
    assert await store.put_entity(key, create=True)
    assert (await store.get_entity("key", key.id)).record == key.record


async def test_ids_holding_nul_find_nothing(store) -> None:
    bad = "resp_\x00"
    assert await store.get(bad) is None
    assert not await store.delete(bad)
    assert await store.events_after(bad, -1) == []
    assert await store.get_conversation("conv_\x00") is None
    assert not await store.delete_conversation("conv_\x00")
    assert not await store.set_conversation_items("conv_\x00", [{"id": "x"}])


async def test_an_unreachable_postgres_is_a_503_without_database_text() -> None:
    down = PostgresStore(f"postgresql://postgres@127.0.0.1:{free_port()}/test")
    for call in (down.ping(), down.get_entity("key", "k"), down.get("resp_x"), down.subscribe(lambda _m: None)):
        with pytest.raises(StoreUnavailable) as err:
            await call
        assert err.value.status_code == 503 and err.value.body["code"] == "service_unavailable"
        assert "127.0.0.1" not in err.value.message and "refused" not in err.value.message.lower()
    assert down.listening() is None
    await down.close()


async def test_concurrent_puts_commit_together_and_a_bad_one_fails_alone(store) -> None:
    tag = os.urandom(6).hex()

    def record(i: int, status: str = "completed", owner: str = "k1") -> StoredResponse:
        rid = f"resp_{tag}_{i}"
        return StoredResponse(id=rid, response={"id": rid, "status": status}, owner=owner, deployment="dep",
                              input_items=[{"id": f"msg_{i}"}])  # fmt: skip

    # the same id twice in one turn: the later put is what is stored
    await asyncio.gather(*(store.put(record(i)) for i in range(20)), store.put(record(0, "cancelled")))
    statuses = [(await store.get(f"resp_{tag}_{i}", "k1")).status for i in range(20)]
    assert statuses == ["cancelled"] + ["completed"] * 19
    if isinstance(store, PostgresStore):  # text cannot hold NUL: that row fails, the rest of its batch is written
        results = await asyncio.gather(*(store.put(record(i)) for i in range(30, 35)),
                                       store.put(record(35, owner="k\x00")), return_exceptions=True)  # fmt: skip
        assert [r is None for r in results] == [True] * 5 + [False]
        assert None not in [await store.get(f"resp_{tag}_{i}", "k1") for i in range(30, 35)]


async def test_concurrent_gets_each_see_their_own_record_and_owner(store) -> None:
    rid = f"resp_{os.urandom(8).hex()}"
    await store.put(StoredResponse(id=rid, response={"id": rid, "status": "completed"}, owner="k1", deployment="d"))
    mine, theirs, missing, again = await asyncio.gather(
        store.get(rid, "k1"), store.get(rid, "k2"), store.get(f"{rid}_none", "k1"), store.get(rid, "k1")
    )
    assert mine.id == rid and again.id == rid and theirs is None and missing is None
    mine.response["status"] = "changed"  # a caller's record is its own
    assert again.response["status"] == "completed"


async def test_postgres_batches_go_one_at_a_time_on_one_kept_connection() -> None:
    """Puts that come while a batch is under way go together in the next one, in order, on the
    same connection; a kept connection the database dropped costs one 503 and is replaced."""
    pg = PostgresStore(PG_URL)
    await pg.ping()
    tag = os.urandom(6).hex()

    def record(i: int, status: str = "completed") -> StoredResponse:
        rid = f"resp_{tag}_{i}"
        return StoredResponse(id=rid, response={"id": rid, "status": status}, owner="k1", deployment="dep")

    runs: list[tuple[str, int]] = []
    run = pg._puts._run

    async def counted(conn: Any, batch: list[Any]) -> None:
        runs.append(("start", len(batch)))
        await run(conn, batch)
        runs.append(("end", len(batch)))

    pg._puts._run = counted
    try:
        first = asyncio.ensure_future(pg.put(record(0, "in_progress")))
        await asyncio.sleep(0)
        await asyncio.sleep(0)  # its batch is under way
        later = [pg.put(record(i)) for i in range(1, 10)] + [pg.put(record(0, "completed"))]
        await asyncio.gather(first, *later)
        assert runs == [("start", 1), ("end", 1), ("start", 10), ("end", 10)]
        assert (await pg.get(f"resp_{tag}_0", "k1")).status == "completed"  # type: ignore[union-attr]
        kept = pg._puts._loops[asyncio.get_running_loop()].conn
        await pg.put(record(11))
        assert pg._puts._loops[asyncio.get_running_loop()].conn is kept

        pool = await pg._pool()
        await pool.execute("SELECT pg_terminate_backend($1)", kept.get_server_pid())
        with contextlib.suppress(StoreUnavailable):
            await pg.put(record(12))  # the connection died under it, or was found closed first
        await pg.put(record(13))
        assert await pg.get(f"resp_{tag}_13", "k1") is not None
    finally:
        await pg.close()
