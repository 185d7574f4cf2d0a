"""Rate-limit counters: a sliding 60 s request log, minute token buckets, slots; per process and in Redis."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

import redis
import redis.asyncio

from llmrelay.gateway.limits import LocalCounters, RedisCounters, Unavailable


async def test_requests_slide_over_60_seconds() -> None:
    c = LocalCounters()
    checks = [("key:a", 3, -1, -1)]
    for t in (100.0, 110.0, 120.0):
        assert await c.acquire(checks, "r", t) is None
    refused = await c.acquire(checks, "r", 130.0)
    assert refused is not None and refused.reason == "requests"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"] == "30.000s"  # the call at 100 leaves at 160
    assert await c.acquire(checks, "r", 160.5) is None  # one slot freed, not a whole new window
    assert (await c.acquire(checks, "r", 161.0)) is not None


async def test_a_refusal_counts_against_nothing() -> None:
    c = LocalCounters()
    both = [("key:a", 5, -1, -1), ("team:t", 1, -1, -1)]
    assert await c.acquire(both, "r", 0.0) is None
    assert (await c.acquire(both, "r", 1.0)).who == "team:t"  # type: ignore[union-attr]
    # the key's own count did not grow with the refused call
    assert await c.acquire([("key:a", 2, -1, -1)], "r", 2.0) is None
    assert (await c.acquire([("key:a", 2, -1, -1)], "r", 3.0)) is not None


async def test_tokens_per_minute_and_parallel_slots() -> None:
    c = LocalCounters()
    checks = [("key:a", -1, 100, 1)]
    assert await c.acquire(checks, "r", 60.0) is None
    assert (await c.acquire(checks, "r", 61.0)).reason == "parallel"  # type: ignore[union-attr]
    c.release(checks, 150, 62.0)
    refused = await c.acquire(checks, "r", 63.0)
    assert refused is not None and refused.reason == "tokens"
    assert refused.headers["x-ratelimit-remaining-tokens"] == "0"
    assert await c.acquire(checks, "r", 120.0) is None  # a new minute


# -- the Redis-shared counters, against a real Redis ----------------------------------------

REDIS_URL = os.environ.get("LLMRELAY_TEST_REDIS", "redis://127.0.0.1:6379/0")


async def test_redis_checks_of_one_turn_go_together_on_one_kept_connection() -> None:
    c = RedisCounters(REDIS_URL)
    key = f"key:{os.urandom(6).hex()}"
    try:
        results = await asyncio.gather(*(c.acquire([(key, 10, -1, -1)], f"r{i}", time.time()) for i in range(25)))
        assert sum(r is None for r in results) == 10  # exactly the limit, counted atomically
        assert {r.reason for r in results if r is not None} == {"requests"}
        pool = c.client.connection_pool
        assert len(pool._available_connections) + len(pool._in_use_connections) == 1
    finally:
        await c.aclose()


async def test_redis_commands_in_one_write_fail_one_by_one() -> None:
    c = RedisCounters(REDIS_URL)
    key = f"llmrelay:test:{os.urandom(6).hex()}"
    try:
        stored, counted, read = await asyncio.gather(
            c._calls.add(("SET", key, "not a number")), c._calls.add(("INCR", key)), c._calls.add(("GET", key)),
            return_exceptions=True,
        )  # fmt: skip
        assert stored in (b"OK", True) and read == b"not a number"
        assert isinstance(counted, redis.ResponseError)
        await c._calls.add(("DEL", key))
    finally:
        await c.aclose()


async def test_redis_flushed_scripts_and_a_killed_connection_are_recovered_from() -> None:
    c = RedisCounters(REDIS_URL)
    admin = redis.asyncio.from_url(REDIS_URL)
    checks = [(f"key:{os.urandom(6).hex()}", 100, -1, -1)]
    try:
        assert await c.acquire(checks, "a", time.time()) is None
        await admin.script_flush()  # as a restarted Redis has no scripts: EVAL loads it again
        assert await c.acquire(checks, "b", time.time()) is None
        kept = await c._calls.add(("CLIENT", "ID"))
        await admin.client_kill_filter(_id=int(kept))
        with contextlib.suppress(Unavailable):
            await c.acquire(checks, "c", time.time())  # it may find the connection dead under it
        assert await c.acquire(checks, "d", time.time()) is None  # on a new one
        assert int(await c._calls.add(("CLIENT", "ID"))) != int(kept)
    finally:
        await admin.aclose()
        await c.aclose()
