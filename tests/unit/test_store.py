import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmrelay.store import MemoryStore, StoredResponse, open_store
from llmrelay.store.base import StoreUnavailable, page_items
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


async def test_an_unreachable_postgres_is_a_503_without_database_text() -> None:
    down = PostgresStore(f"postgresql://postgres@127.0.0.1:{free_port()}/test")
    for call in (down.ping(), down.key_owner("k"), down.get("resp_x"), down.subscribe(lambda _m: None)):
        with pytest.raises(StoreUnavailable) as err:
            await call
        assert err.value.status_code == 503 and err.value.body["code"] == "service_unavailable"
        assert "127.0.0.1" not in err.value.message and "refused" not in err.value.message.lower()
    assert down.listening() is None
    await down.close()
