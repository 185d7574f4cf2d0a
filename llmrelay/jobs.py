"""Background responses that llmrelay runs itself (every provider without native background).

A job is the create flow run as a task: its record goes into the store as `queued` at once,
every event it produces is appended to the store (so a client can resume the stream from any
sequence number, on any instance), and its final record is written only while the stored
status is still active, so a cancel always wins over a late upstream answer. The terminal
event is stored before the final status: a follower that reads a finished status has every
event there is to read.

Liveness is a lease: the running process renews `lease_until`; a record whose lease ran out
(the process died) reads as `failed`. Cancels and new events reach other instances over the
store's channel (Postgres LISTEN/NOTIFY); while a store has no channel (SQLite shared by
workers) or its channel is down (a database restart), the owning process re-reads its jobs'
status every CHECK seconds and followers poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import openai

from .providers.base import Call, response_skeleton
from .store.base import ACTIVE, ResponseStore, StoredResponse, StoreUnavailable
from .streaming.events import TERMINAL, StreamEvent

log = logging.getLogger("llmrelay")
CHECK = 2.0  # seconds between status checks / lease renewals of running jobs
MIN_LEASE = 2 * CHECK  # a lease survives one late renewal
FOLLOW_POLL = 0.5  # seconds between store reads when following another process's job
DEAD = "The process running this background response stopped before it finished."
SHUT_DOWN = "The llmrelay instance running this background response shut down before it finished; create it again."


def lease_seconds(raw: str | None = None) -> int:
    """The job lease from `LLMRELAY_JOB_LEASE` (default 30 s); ValueError when the renewal
    loop could not keep such a lease alive."""
    raw = os.environ.get("LLMRELAY_JOB_LEASE", "30") if raw is None else raw
    try:
        lease = int(raw)
    except ValueError:
        raise ValueError(f"LLMRELAY_JOB_LEASE must be a whole number of seconds, not {raw!r}.") from None
    if lease < MIN_LEASE:
        raise ValueError(
            f"LLMRELAY_JOB_LEASE={lease} is too short: leases are renewed every {CHECK:g} s, so a lease"
            f" must be at least {MIN_LEASE:g} s or running jobs would read as dead."
        )
    return lease


@dataclass(slots=True)
class _Job:
    call: Call
    task: asyncio.Task[None] | None = None
    events: list[StreamEvent] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    final: StoredResponse | None = None  # the finished record, written after the terminal event
    done: bool = False


class Jobs:
    def __init__(self, store: ResponseStore, *, lease: int | None = None) -> None:
        self.store = store
        self.lease = lease_seconds(None if lease is None else str(lease))
        self._jobs: dict[str, _Job] = {}
        self._watchdog: asyncio.Task[None] | None = None
        self._subscribed: bool | None = None  # None: not asked yet
        self._recheck = False  # read the stored status of every job at the next check
        self._wakeups: dict[str, set[asyncio.Event]] = {}  # followers of other instances' jobs
        self._closing = False  # shutting down: a job stopped now failed for that, not cancelled

    async def _subscribe(self) -> bool:
        if self._subscribed is None:
            self._subscribed = await self.store.subscribe(self._on_message)
        return self._subscribed

    def _on_message(self, message: str) -> None:
        kind, _, response_id = message.partition(":")
        if kind == "cancel":
            self.stop(response_id)
        elif kind == "event":
            for wakeup in self._wakeups.get(response_id, ()):
                wakeup.set()
        elif kind == "resync":  # the channel was down: cancels and events may have been missed
            self._recheck = True
            for wakeups in self._wakeups.values():
                for wakeup in wakeups:
                    wakeup.set()

    async def cancelled(self, response_id: str) -> None:
        """A cancel was stored: stop the job here, and tell the instance that runs it."""
        self.stop(response_id)
        if not self.running(response_id):
            await self.store.publish(f"cancel:{response_id}")

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
            lease_until=int(time.time()) + self.lease,
        )
        await self.store.put(record)
        await self._subscribe()
        job = _Job(call)
        self._jobs[call.id] = job
        job.task = asyncio.get_running_loop().create_task(self._run(job, record, events))
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.get_running_loop().create_task(self._watch())
        return record

    def finished(self, record: StoredResponse) -> None:
        """The job's final record: stored once its terminal event is."""
        if (job := self._jobs.get(record.id)) is not None:
            job.final = record

    async def _run(self, job: _Job, record: StoredResponse, events: Callable[[], AsyncIterator[StreamEvent]]) -> None:
        try:
            async for event in events():
                await self._append(job, event)
                if event.type == "response.in_progress":
                    record.response = {**record.response, "status": "in_progress"}
                    await self.store.update_active(record)
            if job.final is not None:
                await self.store.update_active(job.final)
        except asyncio.CancelledError:
            if self._closing:  # said at once, not after the lease runs out (a cancel stored first still wins)
                await self._fail(job, record, SHUT_DOWN)
        except Exception as exc:  # the upstream refused or failed, or the store went away
            if not isinstance(exc, openai.APIError):
                log.exception("background response %s failed", job.call.id)
            await self._fail(job, record, exc.message if isinstance(exc, openai.APIError) else "Internal error.")
        finally:
            job.done = True
            job.changed.set()
            self._jobs.pop(job.call.id, None)

    async def _append(self, job: _Job, event: StreamEvent) -> None:
        job.events.append(event)
        job.changed.set()
        await self.store.append_events(job.call.id, [(event.data["sequence_number"], event.type, event.raw)])
        if self._subscribed:
            with contextlib.suppress(StoreUnavailable):  # only a wakeup: followers also poll
                await self.store.publish(f"event:{job.call.id}")

    async def _fail(self, job: _Job, record: StoredResponse, message: str) -> None:
        """End the job's stream and record with `response.failed`, as far as the store lets us."""
        error = {"code": "server_error", "message": message}
        record.response = {**record.response, "status": "failed", "error": error}
        record.lease_until = None
        try:
            if not (job.events and job.events[-1].terminal):
                seq = job.events[-1].data["sequence_number"] + 1 if job.events else 0
                data = {"type": "response.failed", "sequence_number": seq, "response": record.response}
                await self._append(job, StreamEvent("response.failed", data))
            await self.store.update_active(record)
        except StoreUnavailable:  # the lease runs out instead, and readers see the job as failed
            log.warning("background response %s failed and the store is unavailable to record it", job.call.id)

    async def _watch(self) -> None:
        """Renew the leases of this process's jobs; while no channel delivers cancels, also stop
        the ones whose stored status says they were cancelled elsewhere."""
        renewed = time.monotonic()
        while self._jobs:
            await asyncio.sleep(CHECK)
            try:
                if not self.store.listening() or self._recheck:
                    self._recheck = False
                    for response_id, job in list(self._jobs.items()):
                        record = await self.store.get(response_id, job.call.owner)
                        if record is None or record.status not in ACTIVE:
                            self.stop(response_id)
                if time.monotonic() - renewed >= self.lease / 3:
                    renewed = time.monotonic()
                    for response_id in list(self._jobs):
                        await self.store.renew_lease(response_id, int(time.time()) + self.lease)
            except StoreUnavailable:
                log.warning("cannot check background responses: the store is unavailable")

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
        await self._subscribe()
        wakeup = asyncio.Event()
        self._wakeups.setdefault(record.id, set()).add(wakeup)
        try:
            async for event in self._follow_store(record, after, wakeup):
                yield event
        finally:
            followers = self._wakeups.get(record.id, set())
            followers.discard(wakeup)
            if not followers:
                self._wakeups.pop(record.id, None)

    async def _follow_store(
        self, record: StoredResponse, last: int, wakeup: asyncio.Event
    ) -> AsyncIterator[StreamEvent]:
        store = self.store
        while True:
            wakeup.clear()
            for seq, kind, data in await store.events_after(record.id, last):
                last = seq
                yield StreamEvent(kind, raw=data)
                if kind in TERMINAL:
                    return
            current = await store.get(record.id, record.owner)
            if current is None:
                return
            if expired(current):
                current = failed_for_dead_runner(current)
                await store.update_active(current)
            if current.status not in ACTIVE:
                if await store.events_after(record.id, last):
                    continue  # the runner stored its last events just now
                ended = await store.events_after(record.id, last - 1) if last >= 0 else []
                if ended and ended[0][1] in TERMINAL:
                    return  # the caller resumed after the terminal event: nothing is left
                # Finished without a terminal event in the store (its runner died, or it failed
                # before streaming): the stream still ends the way the record did.
                if current.status in ("completed", "failed", "incomplete"):
                    kind = f"response.{current.status}"
                    yield StreamEvent(kind, {"type": kind, "sequence_number": last + 1, "response": current.response})
                return
            # Woken by the running instance's NOTIFY; the timeout only guards a lost one.
            timeout = FOLLOW_POLL * 10 if store.listening() else FOLLOW_POLL
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), timeout)

    async def aclose(self) -> None:
        """Stop: jobs still running (the HTTP drain let them run on) are stopped, and recorded as
        failed for the shutdown at once rather than once their lease runs out."""
        tasks = [job.task for job in self._jobs.values() if job.task is not None]
        self._closing = True
        for response_id in list(self._jobs):
            self.stop(response_id)
        if tasks:
            await asyncio.wait(tasks)
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
