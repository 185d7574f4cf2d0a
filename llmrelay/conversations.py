"""The Conversations API, kept in llmrelay's store so it works for every provider.

A create with `conversation=` reads the conversation's items as context, and the new input
and output items are appended to it once the response is stored.
"""

from __future__ import annotations

import time
from typing import Any

from . import errors, items, validate
from .ids import new_id
from .store import ResponseStore
from .store.base import Conversation, page_items

Json = dict[str, Any]
MAX_METADATA = 16


class Conversations:
    def __init__(self, store: ResponseStore) -> None:
        self.store = store

    async def create(self, *, items_: list[Json] | None = None, metadata: Any = None, owner: str | None = None) -> Json:
        conv = Conversation(id=new_id("conv"), created_at=int(time.time()), metadata=_metadata(metadata), owner=owner)
        conv.items = _normalize(items_)
        await self.store.put_conversation(conv)
        return conv.public()

    async def get(self, conversation_id: str, *, owner: str | None = None) -> Conversation:
        conv = await self.store.get_conversation(conversation_id, owner)
        if conv is None:
            raise errors.not_found(f"Conversation with id '{conversation_id}' not found.", param="conversation_id")
        return conv

    async def update(self, conversation_id: str, *, metadata: Any, owner: str | None = None) -> Json:
        conv = await self.get(conversation_id, owner=owner)
        conv.metadata = _metadata(metadata)
        await self.store.put_conversation(conv)
        return conv.public()

    async def delete(self, conversation_id: str, *, owner: str | None = None) -> Json:
        if not await self.store.delete_conversation(conversation_id, owner):
            raise errors.not_found(f"Conversation with id '{conversation_id}' not found.", param="conversation_id")
        return {"id": conversation_id, "object": "conversation.deleted", "deleted": True}

    async def list_items(
        self,
        conversation_id: str,
        *,
        after: str | None = None,
        limit: int = 20,
        order: str = "desc",
        owner: str | None = None,
    ) -> Json:
        if not 1 <= limit <= 100:
            raise errors.bad_request("'limit' must be an integer between 1 and 100.", param="limit")
        if order not in ("asc", "desc"):
            raise errors.bad_request("'order' must be 'asc' or 'desc'.", param="order")
        conv = await self.get(conversation_id, owner=owner)
        return page_items(conv.items, after=after, limit=limit, order=order)

    async def add_items(self, conversation_id: str, new: Any, *, owner: str | None = None) -> Json:
        added = _normalize(new)
        if not added:
            raise errors.bad_request("'items' must be a non-empty array of items.", param="items")
        if not await self.store.set_conversation_items(conversation_id, added, owner):
            raise errors.not_found(f"Conversation with id '{conversation_id}' not found.", param="conversation_id")
        return page_items(added, order="asc", limit=len(added))

    async def get_item(self, conversation_id: str, item_id: str, *, owner: str | None = None) -> Json:
        conv = await self.get(conversation_id, owner=owner)
        for item in conv.items:
            if item.get("id") == item_id:
                return item
        raise errors.not_found(f"Item with id '{item_id}' not found.", param="item_id")

    async def delete_item(self, conversation_id: str, item_id: str, *, owner: str | None = None) -> Json:
        conv = await self.get(conversation_id, owner=owner)
        kept = [i for i in conv.items if i.get("id") != item_id]
        if len(kept) == len(conv.items):
            raise errors.not_found(f"Item with id '{item_id}' not found.", param="item_id")
        await self.store.set_conversation_items(conversation_id, kept, owner, append=False)
        return conv.public()

    async def append_turn(self, conversation_id: str, turn: list[Json], *, owner: str | None) -> None:
        """A stored response's input and output, added to its conversation."""
        await self.store.set_conversation_items(conversation_id, turn, owner)


def conversation_id(value: Any) -> str | None:
    """`conversation` as a create sends it: an id, or `{"id": ...}`."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _normalize(value: Any) -> list[Json]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise errors.bad_request("'items' must be an array of items.", param="items")
    validate.check_items(value, "items")
    return items.normalize(value, new_id)


def _metadata(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_METADATA or not all(isinstance(v, str) for v in value.values()):
        raise errors.bad_request(
            f"'metadata' must be an object of at most {MAX_METADATA} string values.", param="metadata"
        )
    return value
