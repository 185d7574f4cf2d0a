"""Cooldowns: a deployment that fails too often within a minute is skipped for a while.

Failures are counted per deployment and error class in fixed one-minute windows. Picking a
deployment only reads `until` (a dict, empty while all is well), so the request path never
waits on anything. With Redis (`Shared`), failures are counted there for every instance and
a cooldown reaches the others over pub/sub; each instance keeps its own `until` in step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Protocol

from .policy import ErrorClass, fail_threshold

log = logging.getLogger("llmrelay")
WINDOW = 60.0  # seconds in which `allowed_fails` are counted, as LiteLLM counts them


class SharedState(Protocol):
    async def count_failure(self, dep_id: str, kind: str) -> int: ...

    async def cool(self, dep_id: str, until: float) -> None: ...


class Cooldowns:
    def __init__(
        self,
        *,
        allowed_fails: int = 3,
        policy: Mapping[str, int] | None = None,
        cooldown_time: float = 5.0,
        enabled: bool = True,
    ) -> None:
        self.allowed_fails = allowed_fails
        self.policy = dict(policy or {})
        self.cooldown_time = cooldown_time
        self.enabled = enabled
        self.until: dict[str, float] = {}  # deployment id -> wall-clock end of its cooldown
        self.shared: SharedState | None = None
        self._fails: dict[tuple[str, str], tuple[float, int]] = {}  # -> (window start, count)

    def cooling(self, dep_id: str, now: float | None = None) -> bool:
        end = self.until.get(dep_id)
        if end is None:
            return False
        if end > (now if now is not None else time.time()):
            return True
        self.until.pop(dep_id, None)
        return False

    def remaining(self) -> dict[str, float]:
        """Seconds left for every deployment cooling down now."""
        now = time.time()
        return {dep: round(end - now, 3) for dep, end in list(self.until.items()) if self.cooling(dep, now)}

    async def failed(self, dep_id: str, kind: ErrorClass) -> bool:
        """Count a failure; True when it puts the deployment into a cooldown."""
        threshold = fail_threshold(kind, self.allowed_fails, self.policy)
        if not self.enabled or threshold is None:
            return False
        if self.shared is not None:
            try:
                count = await self.shared.count_failure(dep_id, kind)
            except Exception as exc:  # Redis down: count here, the request goes on either way
                log.warning("cooldowns: shared state unavailable (%s); counting in this process", exc)
                count = self._count(dep_id, kind)
        else:
            count = self._count(dep_id, kind)
        if count <= threshold:
            return False
        until = time.time() + self.cooldown_time
        self.mark(dep_id, until)
        log.warning("deployment %s cools down for %gs after %d %s in a minute", dep_id, self.cooldown_time,
                    count, kind)  # fmt: skip
        if self.shared is not None:
            try:
                await self.shared.cool(dep_id, until)
            except Exception as exc:
                log.warning("cooldowns: could not share the cooldown of %s: %s", dep_id, exc)
        return True

    async def cool(self, dep_id: str, seconds: float) -> None:
        """Put a deployment into a cooldown now (a failed health check), for every instance."""
        until = time.time() + seconds
        self.mark(dep_id, until)
        if self.shared is not None:
            try:
                await self.shared.cool(dep_id, until)
            except Exception as exc:
                log.warning("cooldowns: could not share the cooldown of %s: %s", dep_id, exc)

    def mark(self, dep_id: str, until: float) -> None:
        if until > self.until.get(dep_id, 0.0):
            self.until[dep_id] = until

    def _count(self, dep_id: str, kind: str) -> int:
        now = time.monotonic()
        start, count = self._fails.get((dep_id, kind), (now, 0))
        if now - start >= WINDOW:
            start, count = now, 0
        self._fails[(dep_id, kind)] = (start, count + 1)
        return count + 1
