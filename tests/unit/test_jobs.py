"""Jobs: the order a job writes its events and its final record in, and the lease check."""

from __future__ import annotations

import asyncio

import pytest

from llmrelay import Relay
from llmrelay.jobs import lease_seconds
from llmrelay.store import MemoryStore
from llmrelay.store.base import ACTIVE, Event, StoredResponse
from llmrelay.streaming.events import TERMINAL


class GatedStore(MemoryStore):
    """Holds a job's terminal event at the door until the test opens it."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived, self.gate = asyncio.Event(), asyncio.Event()
        self.reads, self.followed = 0, asyncio.Event()

    async def get(self, response_id: str, owner: str | None = None) -> StoredResponse | None:
        self.reads += 1
        if self.reads >= 3:  # the test's own read, then the follower's lookup and its first status check
            self.followed.set()
        return await super().get(response_id, owner)

    async def append_events(self, response_id: str, events: list[Event]) -> None:
        if any(kind in TERMINAL for _, kind, _ in events):
            self.arrived.set()
            await self.gate.wait()
        await super().append_events(response_id, events)


async def test_the_final_status_is_stored_after_the_terminal_event_so_followers_end_with_it() -> None:
    store = GatedStore()
    runner, other = Relay(store=store), Relay(store=store)  # two instances sharing one store
    job = await runner.create({"model": "mock/demo", "input": "hello", "background": True})
    await asyncio.wait_for(store.arrived.wait(), 5)
    record = await store.get(job["id"])
    assert record is not None and record.status in ACTIVE  # not finished before its last event is stored
    follower = asyncio.ensure_future(_collect(other, job["id"]))
    await asyncio.wait_for(store.followed.wait(), 5)  # it has read the status while the event is held
    store.gate.set()
    events = await asyncio.wait_for(follower, 10)
    assert events[-1] == "response.completed"
    record = await store.get(job["id"])
    assert record is not None and record.status == "completed"
    await runner.aclose()
    await other.aclose()


async def _collect(relay: Relay, response_id: str) -> list[str]:
    return [event.type async for event in await relay.retrieve_stream(response_id, starting_after=-1)]


def test_a_lease_shorter_than_the_renewal_loop_can_keep_alive_is_refused() -> None:
    assert lease_seconds("30") == 30 and lease_seconds("4") == 4
    with pytest.raises(ValueError, match="at least 4 s"):
        lease_seconds("3")
    with pytest.raises(ValueError, match="whole number"):
        lease_seconds("soon")
