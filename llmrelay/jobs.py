"""Background responses that llmrelay runs itself (every provider without native background).

A job is the create flow run as a task: its record goes into the store as `queued` at once,
every event it produces is appended to the store (so a client can resume the stream from any
sequence number, on any instance), and its final record is written only while the stored
status is still active, so a cancel always wins over a late upstream answer.

Liveness is a lease: the running process renews `lease_until`; a record whose lease ran out
(the process died) reads as `failed`. Cancels and new events reach other instances over the
store's channel (Postgres LISTEN/NOTIFY); a store without one (SQLite shared by workers) has
the owning process re-read its jobs' status every CHECK seconds instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import openai

from .providers.base import Call, response_skeleton
from .store.base import ACTIVE, StoredResponse
from .streaming.events import StreamEvent

if TYPE_CHECKING:
    from .relay import Relay

LEASE = int(os.environ.get("LLMRELAY_JOB_LEASE", "30"))  # seconds a job's record lives without renewal
CHECK = 2.0  # seconds between status checks / lease renewals of running jobs
FOLLOW_POLL = 0.5  # seconds between store reads when following another process's job
DEAD = "The process running this background response stopped before it finished."


@dataclass(slots=True)
class _Job:
    call: Call
    task: asyncio.Task[None] | None = None
    events: list[StreamEvent] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    done: bool = False


class Jobs:
    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self._jobs: dict[str, _Job] = {}
        self._watchdog: asyncio.Task[None] | None = None
        self._subscribed: bool | None = None  # None: not asked yet
        self._wakeups: dict[str, asyncio.Event] = {}  # followers of other instances' jobs

    async def _subscribe(self) -> bool:
        if self._subscribed is None:
            self._subscribed = await self.relay.store.subscribe(self._on_message)
        return self._subscribed

    def _on_message(self, message: str) -> None:
        kind, _, response_id = message.partition(":")
        if kind == "cancel":
            self.stop(response_id)
        elif kind == "event" and (wakeup := self._wakeups.get(response_id)) is not None:
            wakeup.set()

    async def cancelled(self, response_id: str) -> None:
        """A cancel was stored: stop the job here, and tell the instance that runs it."""
        self.stop(response_id)
        if not self.running(response_id):
            await self.relay.store.publish(f"cancel:{response_id}")

    def running(self, response_id: str) -> bool:
        return response_id in self._jobs

    async def start(self, call: Call, events: Callable[[], AsyncIterator[StreamEvent]]) -> StoredResponse:
        """Store the queued record, run `events()` as a task, return the queued record."""
        queued = response_skeleton(call) | {"status": "queued", "background": True}
        record = StoredResponse(
            id=call.id,
            response=queued,
            input_items=call.input_items,
            deployment=call.deployment.id,
            previous_response_id=call.params.get("previous_response_id"),
            owner=call.owner,
            created_at=call.created_at,
            lease_until=int(time.time()) + LEASE,
        )
        await self.relay._put(record)
        await self._subscribe()
        job = _Job(call)
        self._jobs[call.id] = job
        job.task = asyncio.get_running_loop().create_task(self._run(job, record, events))
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.get_running_loop().create_task(self._watch())
        return record

    async def _run(self, job: _Job, record: StoredResponse, events: Callable[[], AsyncIterator[StreamEvent]]) -> None:
        store = self.relay.store
        try:
            async for event in events():
                job.events.append(event)
                await store.append_events(job.call.id, [(event.data["sequence_number"], event.type, event.raw)])
                if self._subscribed:
                    await store.publish(f"event:{job.call.id}")
                if event.type == "response.in_progress":
                    record.response = {**record.response, "status": "in_progress"}
                    await store.update_active(record)
                job.changed.set()
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # the upstream refused or failed before streaming
            message = exc.message if isinstance(exc, openai.APIError) else "Internal error."
            record.response = {**record.response, "status": "failed", "error": {"code": "server_error",
                                                                                "message": message}}  # fmt: skip
            record.lease_until = None
            await store.update_active(record)
        finally:
            job.done = True
            job.changed.set()
            self._jobs.pop(job.call.id, None)

    async def _watch(self) -> None:
        """Renew the leases of this process's jobs; without a channel, also stop the ones
        whose stored status says they were cancelled elsewhere."""
        store = self.relay.store
        renewed = time.monotonic()
        while self._jobs:
            await asyncio.sleep(CHECK)
            if not self._subscribed:
                for response_id, job in list(self._jobs.items()):
                    record = await store.get(response_id, job.call.owner)
                    if record is None or record.status not in ACTIVE:
                        self.stop(response_id)
            if time.monotonic() - renewed >= LEASE / 3:
                renewed = time.monotonic()
                for response_id in list(self._jobs):
                    await store.renew_lease(response_id, int(time.time()) + LEASE)

    def stop(self, response_id: str) -> None:
        job = self._jobs.get(response_id)
        if job is not None and job.task is not None:
            job.task.cancel()

    async def follow(self, record: StoredResponse, after: int) -> AsyncIterator[StreamEvent]:
        """The stored events after sequence number `after`, then the live ones, to the end."""
        job = self._jobs.get(record.id)
        if job is not None:  # our own job: follow it in memory
            sent = after
            while True:
                job.changed.clear()
                for event in job.events:
                    if event.data["sequence_number"] > sent:
                        sent = event.data["sequence_number"]
                        yield event
                if job.done:
                    return
                await job.changed.wait()
        wakeup = self._wakeups.setdefault(record.id, asyncio.Event()) if await self._subscribe() else None
        try:
            async for event in self._follow_store(record, after, wakeup):
                yield event
        finally:
            self._wakeups.pop(record.id, None)

    async def _follow_store(
        self, record: StoredResponse, last: int, wakeup: asyncio.Event | None
    ) -> AsyncIterator[StreamEvent]:
        store = self.relay.store
        while True:
            if wakeup is not None:
                wakeup.clear()
            for seq, kind, data in await store.events_after(record.id, last):
                last = seq
                yield StreamEvent(kind, raw=data)
                if kind in ("response.completed", "response.failed", "response.incomplete", "error"):
                    return
            current = await store.get(record.id, record.owner)
            if current is None or (current.status not in ACTIVE and not await store.events_after(record.id, last)):
                return
            if expired(current):
                return
            if wakeup is None:
                await asyncio.sleep(FOLLOW_POLL)
            else:  # woken by the running instance's NOTIFY; the timeout only guards a lost one
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wakeup.wait(), FOLLOW_POLL * 10)

    async def aclose(self) -> None:
        for response_id in list(self._jobs):
            self.stop(response_id)
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog


def expired(record: StoredResponse) -> bool:
    return record.status in ACTIVE and record.lease_until is not None and record.lease_until < time.time()


def failed_for_dead_runner(record: StoredResponse) -> StoredResponse:
    record.response = {**record.response, "status": "failed", "error": {"code": "server_error", "message": DEAD}}
    record.lease_until = None
    return record
