"""Spend accounting: one spend log row per call, and each call's cost added to its key's,
user's and team's spend, written off the hot path.

`after` only appends to an in-memory batch; a writer task stores the batch every FLUSH
seconds (sooner once it holds BATCH rows) in one transaction: the log rows, and one atomic
increment per entity. So a process killed with kill -9 loses at most the calls that ended in
the last FLUSH seconds before it died, plus the batch it was writing then. While the store is
down the batch is kept (up to MAX_PENDING rows, then the oldest are dropped, logged) and
written once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from ..providers.base import Call
from ..store import ResponseStore
from ..store.base import Charge, StoreUnavailable
from .directory import Caller, Directory
from .durations import window_start
from .entities import budget_seconds
from .stage import Outcome

log = logging.getLogger("llmrelay.gateway")
FLUSH = 0.2  # seconds: the most a kill -9 loses, with the batch in flight
BATCH = 500
MAX_PENDING = 100_000
Json = dict[str, Any]


class SpendLog:
    def __init__(self, store: ResponseStore, directory: Directory, *, store_prompts: bool = False) -> None:
        self.store = store
        self.directory = directory
        self.store_prompts = store_prompts
        self._rows: list[Json] = []
        self._charges: dict[tuple[str, str, int], float] = {}
        self._writing: dict[tuple[str, str, int], float] = {}  # the batch being stored
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # One write at a time: a flush that finds another writing waits for it, so whoever asked
        # for a flush (GET /key/info) reads what every charge before it stored.
        self._flushing = asyncio.Lock()

    def pending(self, kind: str, entity_id: str, window: int) -> float:
        """Spend charged here and not stored yet (the budget check counts it)."""
        key = (kind, entity_id, window)
        return self._charges.get(key, 0.0) + self._writing.get(key, 0.0)

    async def before(self, call: Call) -> None:
        return None

    def after(self, call: Call, outcome: Outcome) -> None:
        caller: Caller | None = call.meta.get("caller")
        now = time.time()
        if caller is not None and outcome.cost:
            for e in caller.entities():
                window = window_start(e.record.get("created_at") or 0, budget_seconds(e.record), now)
                key = (e.kind, e.id, window)
                self._charges[key] = self._charges.get(key, 0.0) + outcome.cost
        self._rows.append(_row(call, outcome, caller, now, self.store_prompts))
        if len(self._rows) >= BATCH:
            self._wake.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FLUSH)
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        async with self._flushing:
            await self._flush()

    async def _flush(self) -> None:
        if not self._rows and not self._charges:
            return
        rows, charges = self._rows, self._charges
        self._rows, self._charges = [], {}
        for key, cost in charges.items():
            self._writing[key] = self._writing.get(key, 0.0) + cost
        batch: list[Charge] = [(k, i, w, c) for (k, i, w), c in charges.items()]
        started = time.monotonic()
        try:
            await self.store.record_spend(batch, rows)
        except Exception as exc:
            if isinstance(exc, StoreUnavailable):  # an outage, already logged by the store
                log.warning("could not store %d spend log rows; keeping them for the next try", len(rows))
            else:
                log.exception("could not store %d spend log rows; keeping them for the next try", len(rows))
            self._rows = rows[-MAX_PENDING:] + self._rows
            for key, cost in charges.items():  # the budget check still counts them
                self._charges[key] = self._charges.get(key, 0.0) + cost
            if len(rows) > MAX_PENDING:
                log.error("dropped %d spend log rows: the store was unavailable too long", len(rows) - MAX_PENDING)
            return
        finally:
            for key, cost in charges.items():
                left = self._writing.get(key, 0.0) - cost
                if left > 1e-12:
                    self._writing[key] = left
                else:
                    self._writing.pop(key, None)
        for kind, entity_id, window, cost in batch:
            self.directory.charged(kind, entity_id, window, cost, read_before=started)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()


def _row(call: Call, outcome: Outcome, caller: Caller | None, now: float, prompts: bool) -> Json:
    usage = outcome.usage or {}
    inp, out = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
    key = caller.key.record if caller is not None else {}
    return {
        "request_id": call.id,
        "key": caller.owner if caller is not None else None,
        "key_alias": key.get("key_alias"),
        "team_id": key.get("team_id"),
        "user_id": key.get("user_id"),
        "model": call.params.get("model"),
        "deployment": call.deployment.id,
        "provider": call.deployment.provider.name,
        "status": outcome.status,
        "input_tokens": inp,
        "cached_tokens": int((usage.get("input_tokens_details") or {}).get("cached_tokens") or 0),
        "output_tokens": out,
        "reasoning_tokens": int((usage.get("output_tokens_details") or {}).get("reasoning_tokens") or 0),
        "total_tokens": inp + out,
        "cost": outcome.cost,
        "latency_ms": round(outcome.latency * 1000, 3),
        "start_time": now - outcome.latency,
        "prompt": {"input": call.params.get("input"), "instructions": call.params.get("instructions")}
        if prompts
        else None,
    }
