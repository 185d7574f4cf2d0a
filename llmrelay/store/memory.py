"""In-process store: for tests and throwaway scripts."""

from __future__ import annotations

import copy

from .base import StoredResponse


class MemoryStore:
    def __init__(self) -> None:
        self._records: dict[str, StoredResponse] = {}

    async def put(self, record: StoredResponse) -> None:
        self._records[record.id] = copy.deepcopy(record)

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
        return True

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
