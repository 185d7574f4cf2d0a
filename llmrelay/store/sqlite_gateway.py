"""The SQLite store's gateway tables: keys, teams and users with their spend, and the spend log."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from .base import SPEND_LOG_COLUMNS, Charge, Entity, Json, report
from .sqlite_io import patiently

T = TypeVar("T")

MIGRATION = """
CREATE TABLE IF NOT EXISTS entities (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    record TEXT NOT NULL,
    spend REAL NOT NULL DEFAULT 0,
    window_start INTEGER NOT NULL DEFAULT 0,
    window_spend REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, id)
);
INSERT OR IGNORE INTO entities (kind, id, record)
    SELECT 'key', key_hash, json_object('owner', owner, 'key_alias', alias, 'created_at', created_at) FROM api_keys;
DROP TABLE api_keys;
CREATE TABLE IF NOT EXISTS spend_logs (
    request_id TEXT, key TEXT, key_alias TEXT, team_id TEXT, user_id TEXT, model TEXT, deployment TEXT,
    provider TEXT, status TEXT, input_tokens INTEGER, cached_tokens INTEGER, output_tokens INTEGER,
    reasoning_tokens INTEGER, total_tokens INTEGER, cost REAL, latency_ms REAL, start_time REAL, prompt TEXT
);
CREATE INDEX IF NOT EXISTS spend_logs_time ON spend_logs (start_time);
"""
_ENTITY = "SELECT kind, id, record, spend, window_start, window_spend FROM entities"
_FIELD = "json_extract(record, '$.' || ?) = ?"


def _entity(row: Any) -> Entity:
    kind, eid, record, spend, start, window = row
    return Entity(kind, eid, orjson.loads(record), spend, start, window)


class SQLiteGateway:
    async def _sql(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor: ...

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T: ...

    async def put_entity(self, entity: Entity, *, create: bool) -> bool:
        record = orjson.dumps(entity.record).decode()
        if create:
            sql = "INSERT OR IGNORE INTO entities (record, kind, id) VALUES (?, ?, ?)"
        else:
            sql = "UPDATE entities SET record = ? WHERE kind = ? AND id = ?"
        args = (record, entity.kind, entity.id)
        return (await self._sql(sql, args)).rowcount > 0

    async def get_entity(self, kind: str, entity_id: str) -> Entity | None:
        row = (await self._sql(f"{_ENTITY} WHERE kind = ? AND id = ?", (kind, entity_id))).fetchone()
        return None if row is None else _entity(row)

    async def list_entities(self, kind: str, *, where: Json, offset: int, limit: int) -> tuple[list[Entity], int]:
        cond = "".join(f" AND {_FIELD}" for _ in where)
        args: tuple[Any, ...] = (kind, *(x for kv in where.items() for x in kv))
        total = (await self._sql(f"SELECT count(*) FROM entities WHERE kind = ?{cond}", args)).fetchone()[0]
        page = f"{_ENTITY} WHERE kind = ?{cond} ORDER BY rowid LIMIT ? OFFSET ?"
        rows = (await self._sql(page, (*args, limit, offset))).fetchall()
        return [_entity(r) for r in rows], total

    async def delete_entity(self, kind: str, entity_id: str) -> bool:
        return (await self._sql("DELETE FROM entities WHERE kind = ? AND id = ?", (kind, entity_id))).rowcount > 0

    async def rename_entity(self, kind: str, old_id: str, new_id: str) -> bool:
        cur = await self._sql("UPDATE entities SET id = ? WHERE kind = ? AND id = ?", (new_id, kind, old_id))
        return cur.rowcount > 0

    async def record_spend(self, charges: list[Charge], logs: list[Json]) -> None:
        names = ", ".join(SPEND_LOG_COLUMNS)
        marks = ", ".join("?" * len(SPEND_LOG_COLUMNS))
        rows = [_cells(row) for row in logs]

        def work(db: sqlite3.Connection) -> None:
            db.executemany(
                "UPDATE entities SET spend = spend + ?4,"
                " window_spend = CASE WHEN window_start = ?3 THEN window_spend + ?4 ELSE ?4 END,"
                " window_start = ?3 WHERE kind = ?1 AND id = ?2",
                charges,
            )
            db.executemany(f"INSERT INTO spend_logs ({names}) VALUES ({marks})", rows)

        await patiently(self._transaction, work)

    async def spend_logs(self, where: Json, *, start: float, end: float, limit: int) -> list[Json]:
        cond = "".join(f" AND {k} = ?" for k in where)  # column names come from SPEND_LOG_COLUMNS
        cur = await self._sql(
            f"SELECT {', '.join(SPEND_LOG_COLUMNS)} FROM spend_logs WHERE start_time >= ? AND start_time < ?{cond}"
            " ORDER BY start_time DESC LIMIT ?",
            (start, end, *where.values(), limit),
        )
        out = [dict(zip(SPEND_LOG_COLUMNS, r, strict=True)) for r in cur.fetchall()]
        for row in out:
            if row["prompt"] is not None:
                row["prompt"] = orjson.loads(row["prompt"])
        return out

    async def spend_report(self, group_by: str, *, start: float, end: float) -> list[Json]:
        rows = await self.spend_logs({}, start=start, end=end, limit=-1)
        return report(rows)[group_by]


def _cells(row: Json) -> list[Any]:
    """A spend log row's values in SPEND_LOG_COLUMNS' order; a JSON value (the prompt) as its text."""
    cells = list(map(row.get, SPEND_LOG_COLUMNS))
    for i in _JSON_CELLS:
        if cells[i] is not None:
            cells[i] = orjson.dumps(cells[i]).decode()
    return cells


_JSON_CELLS = (SPEND_LOG_COLUMNS.index("prompt"),)
