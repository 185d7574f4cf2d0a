"""Rate limits: `rpm_limit`, `tpm_limit` and `max_parallel_requests` of a key, its user and its
team; a call over any of them gets 429 with `Retry-After` and OpenAI's `x-ratelimit-*` headers.
A deployment's own `rpm`, `tpm` and `max_parallel_requests` are the router's: it routes around
a full deployment before answering 429 (router/strategies.py).

Requests are counted in a sliding 60 s window (a log of request times: exactly `rpm_limit`
calls in any 60 s); tokens in fixed minute windows (checked before a call, counted after it,
so a call that starts under the limit may cross it); parallel requests while they run.

With Redis (`router_settings.redis_url` or `redis_host`) one Lua script checks and counts
every limit of a call atomically, so all instances share the counters; while Redis cannot be
reached calls are served unlimited (and logged) rather than failed. Without Redis the counters
are per process: N processes allow N times the limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from .. import errors
from ..providers.base import Call
from ..redis_calls import Script, commands
from .directory import Caller
from .entities import LIMITS
from .stage import Outcome

log = logging.getLogger("llmrelay.gateway")
WINDOW = 60.0
PARALLEL_TTL = 600  # s: a slot a dead process held is freed after this (Redis only)
RELEASE_DELAY = 0.01  # s: Redis releases of calls that end together go in one pipeline
Check = tuple[str, int, int, int]  # (entity name, rpm, tpm, parallel); -1 for no limit


class Unavailable(Exception):
    """The shared counters cannot be reached."""


@dataclass(slots=True)
class Refusal:
    reason: str  # "requests", "tokens" or "parallel"
    who: str
    headers: dict[str, str]


class Counters(Protocol):
    async def acquire(self, checks: list[Check], call_id: str, now: float) -> Refusal | None: ...

    def release(self, checks: list[Check], tokens: int, now: float) -> None:
        """Free the call's parallel slots and count its tokens; never blocks."""


def _headers(rpm: int, rpm_left: int, rpm_reset: float, tpm: int, tpm_left: int, tpm_reset: float) -> dict[str, str]:
    h: dict[str, str] = {}
    if rpm >= 0:
        h |= {"x-ratelimit-limit-requests": str(rpm), "x-ratelimit-remaining-requests": str(max(rpm_left, 0)),
              "x-ratelimit-reset-requests": f"{max(rpm_reset, 0):.3f}s"}  # fmt: skip
    if tpm >= 0:
        h |= {"x-ratelimit-limit-tokens": str(tpm), "x-ratelimit-remaining-tokens": str(max(tpm_left, 0)),
              "x-ratelimit-reset-tokens": f"{max(tpm_reset, 0):.3f}s"}  # fmt: skip
    return h


def _minute(now: float) -> int:
    return int(now // WINDOW)


@dataclass(slots=True)
class _Local:
    requests: deque[float] = field(default_factory=deque)
    minute: int = 0
    tokens: int = 0
    running: int = 0


class LocalCounters:
    """This process's counters."""

    def __init__(self) -> None:
        self._state: dict[str, _Local] = {}

    async def acquire(self, checks: list[Check], call_id: str, now: float) -> Refusal | None:
        states = []
        for name, rpm, tpm, par in checks:
            s = self._state.get(name) or self._state.setdefault(name, _Local())
            while s.requests and s.requests[0] <= now - WINDOW:
                s.requests.popleft()
            if s.minute != _minute(now):
                s.minute, s.tokens = _minute(now), 0
            rpm_reset = s.requests[0] + WINDOW - now if s.requests else WINDOW
            tpm_reset = (s.minute + 1) * WINDOW - now
            reason = None
            if rpm >= 0 and len(s.requests) >= rpm:
                reason = "requests"
            elif tpm >= 0 and s.tokens >= tpm:
                reason = "tokens"
            elif par >= 0 and s.running >= par:
                reason = "parallel"
            if reason:
                headers = _headers(rpm, rpm - len(s.requests), rpm_reset, tpm, tpm - s.tokens, tpm_reset)
                return Refusal(reason, name, headers)
            states.append((s, rpm, par))
        for s, rpm, par in states:  # every limit passed: count the call against all of them
            if rpm >= 0:
                s.requests.append(now)
            if par >= 0:
                s.running += 1
        return None

    def release(self, checks: list[Check], tokens: int, now: float) -> None:
        for name, _rpm, tpm, par in checks:
            s = self._state.get(name)
            if s is None:
                continue
            if par >= 0:
                s.running = max(s.running - 1, 0)
            if tpm >= 0 and tokens:
                if s.minute != _minute(now):
                    s.minute, s.tokens = _minute(now), 0
                s.tokens += tokens


# KEYS: per check, its request log, its token bucket (this minute) and its running count.
# ARGV: now (ms), window (ms), member, then per check rpm, tpm, parallel (-1: none).
_ACQUIRE = Script("""
local now, window, member = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local n = #KEYS / 3
local minute_end = (math.floor(now / window) + 1) * window
for i = 0, n - 1 do
  local rk, tk, pk = KEYS[3*i+1], KEYS[3*i+2], KEYS[3*i+3]
  local rpm, tpm, par = tonumber(ARGV[4+3*i]), tonumber(ARGV[5+3*i]), tonumber(ARGV[6+3*i])
  redis.call('ZREMRANGEBYSCORE', rk, '-inf', now - window)
  local used = redis.call('ZCARD', rk)
  local tokens = tonumber(redis.call('GET', tk) or '0')
  local running = tonumber(redis.call('GET', pk) or '0')
  local reason = nil
  if rpm >= 0 and used >= rpm then reason = 'requests'
  elseif tpm >= 0 and tokens >= tpm then reason = 'tokens'
  elseif par >= 0 and running >= par then reason = 'parallel' end
  if reason then
    local oldest = redis.call('ZRANGE', rk, 0, 0, 'WITHSCORES')
    local rreset = window
    if oldest[2] then rreset = tonumber(oldest[2]) + window - now end
    return {i, reason, used, tokens, rreset, minute_end - now}
  end
end
for i = 0, n - 1 do
  local rk, pk = KEYS[3*i+1], KEYS[3*i+3]
  if tonumber(ARGV[4+3*i]) >= 0 then
    redis.call('ZADD', rk, now, member)
    redis.call('PEXPIRE', rk, window)
  end
  if tonumber(ARGV[6+3*i]) >= 0 then
    redis.call('INCR', pk)
    redis.call('EXPIRE', pk, 600)  -- PARALLEL_TTL
  end
end
return {-1}
""")


class RedisCounters:
    """Counters every instance shares, in Redis. A call's check is one round trip; releases
    are gathered for RELEASE_DELAY and sent together in one pipeline."""

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self.client = redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
        self._errors = (redis.RedisError, OSError)
        self._calls = commands(self.client)
        self._releases: list[tuple[list[Check], int, float]] = []
        self._sender: asyncio.Task[None] | None = None

    def _keys(self, name: str, now: float) -> tuple[str, str, str]:
        return f"llmrelay:rl:{name}:r", f"llmrelay:rl:{name}:t:{_minute(now)}", f"llmrelay:rl:{name}:p"

    async def acquire(self, checks: list[Check], call_id: str, now: float) -> Refusal | None:
        keys: list[str] = []
        args: list[Any] = [int(now * 1000), int(WINDOW * 1000), call_id]
        for name, rpm, tpm, par in checks:
            keys += self._keys(name, now)
            args += [rpm, tpm, par]
        try:
            result = await _ACQUIRE(self._calls, keys, args)
        except self._errors as exc:
            raise Unavailable(f"{type(exc).__name__}: {exc}") from exc
        if int(result[0]) < 0:
            return None
        i, reason, used, tokens, rreset, treset = result
        name, rpm, tpm, _par = checks[int(i)]
        reason = reason.decode() if isinstance(reason, bytes) else str(reason)
        headers = _headers(rpm, rpm - int(used), int(rreset) / 1000, tpm, tpm - int(tokens), int(treset) / 1000)
        return Refusal(reason, name, headers)

    def release(self, checks: list[Check], tokens: int, now: float) -> None:
        self._releases.append((checks, tokens, now))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send_soon())

    async def _send_soon(self) -> None:
        await asyncio.sleep(RELEASE_DELAY)
        await self.send()

    async def send(self) -> None:
        batch, self._releases = self._releases, []
        if not batch:
            return
        pipe = self.client.pipeline(transaction=False)
        for checks, tokens, now in batch:
            for name, _rpm, tpm, par in checks:
                _, tk, pk = self._keys(name, now)
                if par >= 0:
                    pipe.decr(pk)
                if tpm >= 0 and tokens:
                    pipe.incrby(tk, tokens)
                    pipe.expire(tk, int(2 * WINDOW))
        try:
            await pipe.execute()
        except self._errors as exc:
            log.warning("rate-limit counters unavailable: %d calls' slots and tokens not released: %s", len(batch), exc)

    async def aclose(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        await self.send()
        await self._calls.close()
        await self.client.aclose()


class Limits:
    """The stage: check and count before the call, release and count its tokens after."""

    def __init__(self, counters: Counters) -> None:
        self.counters = counters

    async def before(self, call: Call) -> None:
        caller: Caller | None = call.meta.get("caller")
        if caller is None:
            return
        checks = caller.derived.get("limits")
        if checks is None:
            checks = caller.derived["limits"] = [
                (f"{e.kind}:{e.id}", *(_limit(e.record.get(n)) for n in LIMITS))
                for e in caller.entities()
                if any(e.record.get(n) is not None for n in LIMITS)
            ]
        if not checks:
            return
        try:
            refusal = await self.counters.acquire(checks, call.id, time.time())  # type: ignore[arg-type]
        except Unavailable as exc:  # serve unlimited rather than fail every call; the log says so
            log.warning("rate-limit counters unavailable, call %s not limited: %s", call.id, exc)
            return
        if refusal is not None:
            raise _too_many(refusal)
        call.meta["limits"] = checks

    def after(self, call: Call, outcome: Outcome) -> None:
        checks = call.meta.get("limits")
        if not checks or all(tpm < 0 and par < 0 for _, _, tpm, par in checks):
            return  # requests only: counted when admitted, nothing to release
        usage = outcome.usage or {}
        tokens = int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0)
        self.counters.release(checks, tokens, time.time())

    async def aclose(self) -> None:
        close = getattr(self.counters, "aclose", None)
        if close is not None:
            await close()


def _limit(value: Any) -> int:
    return -1 if value is None else int(value)


def _too_many(refusal: Refusal) -> errors.APIStatusError:
    kind, _, entity = refusal.who.partition(":")
    who = "key" if kind == "key" else f"key's {kind} '{entity}'"
    what = {"requests": "requests per minute (rpm_limit)", "tokens": "tokens per minute (tpm_limit)",
            "parallel": "parallel requests (max_parallel_requests)"}[refusal.reason]  # fmt: skip
    headers = dict(refusal.headers)
    reset = headers.get(f"x-ratelimit-reset-{'tokens' if refusal.reason == 'tokens' else 'requests'}", "1s")
    headers["retry-after"] = "1" if refusal.reason == "parallel" else str(max(1, round(float(reset[:-1]) + 0.5)))
    return errors.status_error(
        429, f"Rate limit reached: this {who} is at its limit of {what}.", type="rate_limit_error",
        code="rate_limit_exceeded", headers=headers,
    )  # fmt: skip
