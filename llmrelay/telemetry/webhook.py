"""A webhook target: each call's record as one JSON object, POSTed in batches (a JSON array).

`emit` only appends to a bounded queue; a sender task posts a batch once it holds BATCH
records or FLUSH seconds after the first one arrived. A failed post (a connection error, a
timeout, a 408/429/5xx) is retried with backoff, ATTEMPTS in all, then the batch is dropped
and logged. Loss bound: records beyond MAX_QUEUED waiting (the target down or slow for long)
are dropped and counted in the log; at shutdown what is queued gets one more try of at most
SHUTDOWN_WAIT seconds. Delivery is at least once: a post that timed out after the target
took it is sent again, so receivers dedupe by `request_id` / `response_id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

import aiohttp
import orjson

from .record import Record
from .settings import WebhookTarget

log = logging.getLogger("llmrelay.telemetry")
BATCH = 100
FLUSH = 1.0  # seconds a record waits at most for its batch to fill
MAX_QUEUED = 10_000
ATTEMPTS = 4
BACKOFF = 0.5  # seconds before the first retry, doubled for each next one
TIMEOUT = 10.0
SHUTDOWN_WAIT = 5.0


class Webhook:
    def __init__(self, target: WebhookTarget, *, batch: int = BATCH, flush: float = FLUSH) -> None:
        self.target = target
        self.batch = batch
        self.flush = flush
        self.queue: deque[dict[str, Any]] = deque()
        self.dropped = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def emit(self, record: Record) -> None:
        if not (self.target.success if record.ok else self.target.failure):
            return
        if len(self.queue) >= MAX_QUEUED:
            self.dropped += 1
            if self.dropped in (1, 100) or self.dropped % 10_000 == 0:
                log.warning("webhook %s: queue full, %d records dropped", self.target.url, self.dropped)
            return
        self.queue.append(record.as_json())
        if len(self.queue) in (1, self.batch):  # a batch begins (its FLUSH clock starts), or is full
            self._wake.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            if not self.queue:
                self._wake.clear()
                await self._wake.wait()  # the first record of the next batch
            if len(self.queue) < self.batch:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.flush)  # until full, or FLUSH
            await self._send_some()

    async def _send_some(self) -> None:
        while self.queue:
            n = min(self.batch, len(self.queue))
            batch = [self.queue.popleft() for _ in range(n)]
            try:
                await self._post(batch)
            except asyncio.CancelledError:  # stopping: the shutdown flush sends it again
                self.queue.extendleft(reversed(batch))
                raise

    async def _post(self, batch: list[dict[str, Any]]) -> None:
        body = orjson.dumps(batch)
        headers = {"content-type": "application/json", **self.target.headers}
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT), trust_env=True)
        for attempt in range(ATTEMPTS):
            try:
                async with self._session.post(self.target.url, data=body, headers=headers) as resp:
                    if resp.status < 400:
                        return
                    if resp.status not in (408, 409, 429) and resp.status < 500:
                        log.error("webhook %s refused %d records: HTTP %d", self.target.url, len(batch), resp.status)
                        return
                    reason = f"HTTP {resp.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                reason = str(exc) or type(exc).__name__
            if attempt + 1 < ATTEMPTS:
                await asyncio.sleep(BACKOFF * 2**attempt)
        log.error("webhook %s: dropped %d records after %d attempts (%s)", self.target.url, len(batch), ATTEMPTS,
                  reason)  # fmt: skip

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SHUTDOWN_WAIT):
                await self._send_some()
        if self._session is not None:
            await self._session.close()
