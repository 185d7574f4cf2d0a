"""Per-process rate-limit counters: a sliding 60 s request log, minute token buckets, slots."""

from __future__ import annotations

from llmrelay.gateway.limits import LocalCounters


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
