"""The spend log's flushes: one that finds another writing waits for it, so whoever asked for a
flush (GET /key/info) reads every charge made before it asked."""

from __future__ import annotations

import asyncio
from typing import Any

from llmrelay.gateway.directory import Directory
from llmrelay.gateway.spend import SpendLog
from llmrelay.store.memory import MemoryStore


class SlowStore(MemoryStore):
    """A store whose spend writes wait for `gate`."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.stored: list[int] = []

    async def record_spend(self, charges: list[Any], logs: list[Any]) -> None:
        await self.gate.wait()
        await super().record_spend(charges, logs)
        self.stored.append(len(logs))


async def test_a_flush_waits_for_the_one_writing() -> None:
    store = SlowStore()
    spend = SpendLog(store, Directory(store))
    spend._rows.append({"request_id": "resp_1"})  # a call's row, as `after` leaves it
    writing = asyncio.ensure_future(spend.flush())  # the periodic flush, its write in flight
    await asyncio.sleep(0)
    asked = asyncio.ensure_future(spend.flush())  # GET /key/info asks for one meanwhile
    await asyncio.sleep(0.05)
    assert not asked.done()  # it does not answer before the write in flight stored
    store.gate.set()
    await asyncio.gather(writing, asked)
    assert store.stored == [1]
