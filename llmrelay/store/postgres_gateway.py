"""The Postgres store's gateway tables: keys, teams and users with their spend, and the spend log.

Spend is added with one UPDATE per entity per batch (never a read-modify-write), so every
instance's charges add up exactly; the spend log rows of a batch go in with them, in one
transaction.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from .base import SPEND_LOG_COLUMNS, Charge, Entity, Json

MIGRATION = """
CREATE TABLE IF NOT EXISTS llmrelay_entities (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    record JSONB NOT NULL,
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    window_start BIGINT NOT NULL DEFAULT 0,
    window_spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    seq BIGSERIAL,
    PRIMARY KEY (kind, id)
);
INSERT INTO llmrelay_entities (kind, id, record)
    SELECT 'key', key_hash, jsonb_build_object('owner', owner, 'key_alias', alias, 'created_at', created_at)
    FROM llmrelay_api_keys ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS llmrelay_spend_logs (
    request_id TEXT, key TEXT, key_alias TEXT, team_id TEXT, user_id TEXT, model TEXT, deployment TEXT,
    provider TEXT, status TEXT, input_tokens BIGINT, cached_tokens BIGINT, output_tokens BIGINT,
    reasoning_tokens BIGINT, total_tokens BIGINT, cost DOUBLE PRECISION, latency_ms DOUBLE PRECISION,
    start_time DOUBLE PRECISION, prompt JSONB
);
CREATE INDEX IF NOT EXISTS llmrelay_spend_logs_time ON llmrelay_spend_logs (start_time);
"""
_ENTITY = "SELECT kind, id, record::text, spend, window_start, window_spend FROM llmrelay_entities"
_GROUPS = {
    "key": "key",
    "team_id": "team_id",
    "user_id": "user_id",
    "model": "model",
    "day": "to_char(to_timestamp(start_time) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
}


def _entity(row: Any) -> Entity:
    kind, eid, record, spend, start, window = row
    return Entity(kind, eid, orjson.loads(_codec()[1](record)), spend, start, window)


def _codec() -> tuple[Any, Any]:
    """The store's NUL-safe JSON text encoding and its inverse (postgres.py imports this module)."""
    from .postgres import _dump, _text

    return _dump, _text


class PostgresGateway:
    async def _pool(self) -> asyncpg.Pool: ...

    async def put_entity(self, entity: Entity, *, create: bool) -> bool:
        pool = await self._pool()
        record = _codec()[0](entity.record)
        if create:
            status = await pool.execute(
                "INSERT INTO llmrelay_entities (kind, id, record) VALUES ($1, $2, $3::jsonb) ON CONFLICT DO NOTHING",
                entity.kind, entity.id, record,
            )  # fmt: skip
        else:
            status = await pool.execute(
                "UPDATE llmrelay_entities SET record = $3::jsonb WHERE kind = $1 AND id = $2",
                entity.kind, entity.id, record,
            )  # fmt: skip
        return status.endswith(" 1")

    async def get_entity(self, kind: str, entity_id: str) -> Entity | None:
        if "\0" in entity_id:
            return None
        pool = await self._pool()
        row = await pool.fetchrow(f"{_ENTITY} WHERE kind = $1 AND id = $2", kind, entity_id)
        return None if row is None else _entity(row)

    async def list_entities(self, kind: str, *, where: Json, offset: int, limit: int) -> tuple[list[Entity], int]:
        pool = await self._pool()
        cond = " AND record @> $2::jsonb"
        match = orjson.dumps(where).decode()
        total = await pool.fetchval(f"SELECT count(*) FROM llmrelay_entities WHERE kind = $1{cond}", kind, match)
        rows = await pool.fetch(
            f"{_ENTITY} WHERE kind = $1{cond} ORDER BY seq LIMIT $3 OFFSET $4", kind, match, limit, offset
        )
        return [_entity(r) for r in rows], total

    async def delete_entity(self, kind: str, entity_id: str) -> bool:
        pool = await self._pool()
        status = await pool.execute("DELETE FROM llmrelay_entities WHERE kind = $1 AND id = $2", kind, entity_id)
        return status.endswith(" 1")

    async def rename_entity(self, kind: str, old_id: str, new_id: str) -> bool:
        pool = await self._pool()
        status = await pool.execute(
            "UPDATE llmrelay_entities SET id = $3 WHERE kind = $1 AND id = $2", kind, old_id, new_id
        )
        return status.endswith(" 1")

    async def record_spend(self, charges: list[Charge], logs: list[Json]) -> None:
        pool = await self._pool()
        async with pool.acquire() as conn, conn.transaction():
            if charges:
                await conn.executemany(
                    "UPDATE llmrelay_entities SET spend = spend + $4,"
                    " window_spend = CASE WHEN window_start = $3 THEN window_spend + $4 ELSE $4 END,"
                    " window_start = $3 WHERE kind = $1 AND id = $2",
                    charges,
                )
            if logs:
                await conn.copy_records_to_table(
                    "llmrelay_spend_logs",
                    records=[tuple(_cell(c, row.get(c)) for c in SPEND_LOG_COLUMNS) for row in logs],
                    columns=SPEND_LOG_COLUMNS,
                )

    async def spend_logs(self, where: Json, *, start: float, end: float, limit: int) -> list[Json]:
        pool = await self._pool()
        cond = "".join(f" AND {k} = ${n}" for n, k in enumerate(where, start=4))  # names from SPEND_LOG_COLUMNS
        columns = ", ".join("prompt::text" if c == "prompt" else c for c in SPEND_LOG_COLUMNS)
        rows = await pool.fetch(
            f"SELECT {columns} FROM llmrelay_spend_logs WHERE start_time >= $1 AND start_time < $2{cond}"
            " ORDER BY start_time DESC LIMIT $3",
            start, end, limit, *where.values(),
        )  # fmt: skip
        out = [dict(zip(SPEND_LOG_COLUMNS, r, strict=True)) for r in rows]
        for row in out:
            if row["prompt"] is not None:
                row["prompt"] = orjson.loads(_codec()[1](row["prompt"]))
        return out

    async def spend_report(self, group_by: str, *, start: float, end: float) -> list[Json]:
        pool = await self._pool()
        expr = _GROUPS[group_by]
        rows = await pool.fetch(
            f"SELECT {expr} AS g, sum(cost), count(*), coalesce(sum(total_tokens), 0)::bigint FROM llmrelay_spend_logs"
            " WHERE start_time >= $1 AND start_time < $2 GROUP BY g ORDER BY 2 DESC",
            start, end,
        )  # fmt: skip
        return [{group_by: g, "spend": s, "requests": n, "total_tokens": t} for g, s, n, t in rows]


def _cell(column: str, value: Any) -> Any:
    if column == "prompt":
        return None if value is None else _codec()[0](value)
    return value
