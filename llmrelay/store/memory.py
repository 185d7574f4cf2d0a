"""In-process store: for tests and throwaway scripts."""

from __future__ import annotations

import copy
from collections.abc import Callable

from .base import ACTIVE, Conversation, Event, Json, StoredResponse


class MemoryStore:
    def __init__(self) -> None:
        self._records: dict[str, StoredResponse] = {}
        self._events: dict[str, list[Event]] = {}
        self._conversations: dict[str, Conversation] = {}
        self._keys: dict[str, str] = {}

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

    async def add_key(self, key_hash: str, owner: str, alias: str | None) -> None:
        self._keys[key_hash] = owner

    async def key_owner(self, key_hash: str) -> str | None:
        return self._keys.get(key_hash)

    async def delete_key(self, key_hash: str) -> bool:
        return self._keys.pop(key_hash, None) is not None

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
