"""In-process store: for tests and throwaway scripts."""

from __future__ import annotations

import copy
from collections.abc import Callable

from .base import ACTIVE, Charge, Conversation, Entity, Event, Json, StoredResponse, report


class MemoryStore:
    def __init__(self) -> None:
        self._records: dict[str, StoredResponse] = {}
        self._events: dict[str, list[Event]] = {}
        self._conversations: dict[str, Conversation] = {}
        self._entities: dict[tuple[str, str], Entity] = {}
        self._logs: list[Json] = []

    async def put(self, record: StoredResponse) -> None:
        self._records[record.id] = copy.deepcopy(record)

    async def update_active(self, record: StoredResponse) -> bool:
        current = self._records.get(record.id)
        if current is None or current.status not in ACTIVE:
            return False
        self._records[record.id] = copy.deepcopy(record)
        return True

    async def get(self, response_id: str, owner: str | None = None) -> StoredResponse | None:
        record = self._records.get(response_id)
        if record is None or record.owner != owner:
            return None
        return copy.deepcopy(record)

    async def delete(self, response_id: str, owner: str | None = None) -> bool:
        record = self._records.get(response_id)
        if record is None or record.owner != owner:
            return False
        del self._records[response_id]
        self._events.pop(response_id, None)
        return True

    async def find(self, response_id: str) -> StoredResponse | None:
        record = self._records.get(response_id)
        return copy.deepcopy(record) if record is not None else None

    async def active(self, limit: int) -> list[StoredResponse]:
        found = [r for r in self._records.values() if r.status in ACTIVE and r.background]
        found.sort(key=lambda r: -r.created_at)
        return copy.deepcopy(found[:limit])

    async def renew_lease(self, response_id: str, until: int) -> None:
        if (record := self._records.get(response_id)) is not None:
            record.lease_until = until

    async def append_events(self, response_id: str, events: list[Event]) -> None:
        self._events.setdefault(response_id, []).extend(events)

    async def events_after(self, response_id: str, after: int) -> list[Event]:
        return [e for e in self._events.get(response_id, []) if e[0] > after]

    async def put_conversation(self, conversation: Conversation) -> None:
        current = self._conversations.get(conversation.id)
        kept = current.items if current else conversation.items
        self._conversations[conversation.id] = copy.deepcopy(conversation)
        self._conversations[conversation.id].items = kept

    async def get_conversation(self, conversation_id: str, owner: str | None = None) -> Conversation | None:
        conv = self._conversations.get(conversation_id)
        return copy.deepcopy(conv) if conv is not None and conv.owner == owner else None

    async def delete_conversation(self, conversation_id: str, owner: str | None = None) -> bool:
        conv = self._conversations.get(conversation_id)
        if conv is None or conv.owner != owner:
            return False
        del self._conversations[conversation_id]
        return True

    async def set_conversation_items(
        self, conversation_id: str, items: list[Json], owner: str | None = None, *, append: bool = True
    ) -> bool:
        conv = self._conversations.get(conversation_id)
        if conv is None or conv.owner != owner:
            return False
        conv.items = (conv.items if append else []) + copy.deepcopy(items)
        return True

    async def put_entity(self, entity: Entity, *, create: bool) -> bool:
        key = (entity.kind, entity.id)
        current = self._entities.get(key)
        if (current is None) != create:
            return False
        if current is None:
            self._entities[key] = copy.deepcopy(entity)
        else:
            current.record = copy.deepcopy(entity.record)
        return True

    async def get_entity(self, kind: str, entity_id: str) -> Entity | None:
        found = self._entities.get((kind, entity_id))
        return copy.deepcopy(found) if found is not None else None

    async def list_entities(self, kind: str, *, where: Json, offset: int, limit: int) -> tuple[list[Entity], int]:
        found = [e for (k, _), e in self._entities.items() if k == kind and _matches(e.record, where)]
        return copy.deepcopy(found[offset : offset + limit]), len(found)

    async def delete_entity(self, kind: str, entity_id: str) -> bool:
        return self._entities.pop((kind, entity_id), None) is not None

    async def rename_entity(self, kind: str, old_id: str, new_id: str) -> bool:
        entity = self._entities.pop((kind, old_id), None)
        if entity is None:
            return False
        entity.id = new_id
        self._entities[(kind, new_id)] = entity
        return True

    async def record_spend(self, charges: list[Charge], logs: list[Json]) -> None:
        for kind, entity_id, window, amount in charges:
            if (e := self._entities.get((kind, entity_id))) is not None:
                e.window_spend = (e.window_spend if e.window_start == window else 0.0) + amount
                e.window_start = window
                e.spend += amount
        self._logs.extend(copy.deepcopy(logs))

    async def spend_logs(self, where: Json, *, start: float, end: float, limit: int) -> list[Json]:
        rows = [r for r in reversed(self._logs) if start <= r["start_time"] < end and _matches(r, where)]
        return copy.deepcopy(rows[:limit])

    async def spend_report(self, group_by: str, *, start: float, end: float) -> list[Json]:
        return report(r for r in self._logs if start <= r["start_time"] < end)[group_by]

    async def subscribe(self, callback: Callable[[str], None]) -> bool:
        return False  # one process (or workers polling the file): no channel

    def listening(self) -> bool | None:
        return None

    async def publish(self, message: str) -> None:
        return None

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


def _matches(row: Json, where: Json) -> bool:
    return all(row.get(k) == v for k, v in where.items())
