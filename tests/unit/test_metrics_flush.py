"""Prometheus metrics counted in memory and flushed: what a scrape shows must be what calling
prometheus_client once per call would have written, histogram buckets and sums included."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace

import prometheus_client as prom
from prometheus_client.parser import text_string_to_metric_families

from llmrelay.telemetry.metrics import FIRST_TOKEN, LATENCY, STORE, TOKEN_TYPES, WHO, Metrics
from llmrelay.telemetry.record import Record

BASE = Record(
    request_id="r", response_id="resp_1", model="claude", deployment="claude-1", provider="anthropic",
    key_alias="svc", team="research", status="completed", error_class=None, latency=0.3, ttft=0.05,
    input_tokens=10, output_tokens=7, reasoning_tokens=3, cached_tokens=4, cost=0.01, stream=True,
    background=False, start_time=0.0,
)  # fmt: skip


def _records() -> list[Record]:
    rng = random.Random(7)
    bounds = [*LATENCY, *FIRST_TOKEN]
    out = []
    for i in range(300):
        latency = rng.choice([rng.choice(bounds), rng.uniform(0, 400)])  # on a bound, between, beyond the last
        failed = i % 7 == 0
        out.append(replace(
            BASE, model=rng.choice(["claude", "gpt"]), key_alias=rng.choice(["svc", None]), latency=latency,
            ttft=rng.choice([None, rng.choice(bounds), rng.uniform(0, 40)]), status="error" if failed else "completed",
            error_class="APIConnectionError" if failed else None, input_tokens=rng.randrange(3),
            cost=rng.choice([0.0, 0.5]), background=i % 5 == 0,
        ))  # fmt: skip
    return out


def _reference(records: list[Record], store: list[float]) -> prom.CollectorRegistry:
    """The same calls, written to prometheus_client one by one."""
    r = prom.CollectorRegistry()
    requests = prom.Counter("llmrelay_requests", "", [*WHO, "status"], registry=r)
    latency = prom.Histogram("llmrelay_request_duration_seconds", "", WHO[:3], buckets=LATENCY, registry=r)
    first = prom.Histogram("llmrelay_time_to_first_token_seconds", "", WHO[:3], buckets=FIRST_TOKEN, registry=r)
    tokens = prom.Counter("llmrelay_tokens", "", [*WHO, "type"], registry=r)
    cost = prom.Counter("llmrelay_cost_usd", "", WHO, registry=r)
    errors = prom.Counter("llmrelay_errors", "", [*WHO[:3], "error_class"], registry=r)
    jobs = prom.Counter("llmrelay_background_jobs", "", ["status"], registry=r)
    ops = prom.Histogram("llmrelay_store_operation_duration_seconds", "", ["operation"], buckets=STORE, registry=r)
    for x in records:
        who = (x.model, x.deployment, x.provider, x.key_alias or "", x.team or "")
        requests.labels(*who, x.status).inc()
        latency.labels(*who[:3]).observe(x.latency)
        if x.ttft is not None:
            first.labels(*who[:3]).observe(x.ttft)
        counts = (x.input_tokens, x.output_tokens, x.reasoning_tokens, x.cached_tokens)
        for kind, n in zip(TOKEN_TYPES, counts, strict=True):
            if n:
                tokens.labels(*who, kind).inc(n)
        if x.cost:
            cost.labels(*who).inc(x.cost)
        if x.error_class:
            errors.labels(*who[:3], x.error_class).inc()
        if x.background:
            jobs.labels(x.status).inc()
    for seconds in store:
        ops.labels("put").observe(seconds)
    return r


def _samples(text: str, names: set[str]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): round(s.value, 9)
        for family in text_string_to_metric_families(text)
        if family.name in names
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_a_scrape_shows_what_one_write_per_call_would_have_written() -> None:
    metrics = Metrics()
    records = _records()
    store = [0.0005, 0.003, 0.2, 7.0, 0.001]

    async def put() -> None:
        return None

    asyncio.run(metrics.timed("put", put)())  # a store operation leaves its name and seconds
    (name, seconds) = metrics.queue.pop()
    assert name == "put" and 0 <= seconds < 1
    for record in records:
        metrics.started()
        metrics.emit(record)
    for seconds in store:  # known timings, queued as timed() queues them
        metrics.queue.append(("put", seconds))
    metrics.started()  # one call still in flight
    half = len(metrics.queue) // 2
    pending = [metrics.queue.popleft() for _ in range(half)]  # two flushes, as the thread and a scrape may do
    metrics.queue.extendleft(reversed(pending))
    metrics.flush()
    body, _ = metrics.scrape()
    metrics.close()
    text = body.decode()
    assert "llmrelay_requests_in_flight 1.0" in text
    expected = prom.generate_latest(_reference(records, store)).decode()
    names = {
        "llmrelay_requests", "llmrelay_request_duration_seconds", "llmrelay_time_to_first_token_seconds",
        "llmrelay_tokens", "llmrelay_cost_usd", "llmrelay_errors", "llmrelay_background_jobs",
        "llmrelay_store_operation_duration_seconds",
    }  # fmt: skip
    got, want = _samples(text, names), _samples(expected, names)
    assert got == want and len(want) > 50


def test_router_events_are_counted() -> None:
    metrics = Metrics()
    metrics.retried("m", "d")
    metrics.retried("m", "d")
    metrics.fell_back("m", "f")
    metrics.cooled("d")
    text = metrics.scrape()[0].decode()
    metrics.close()
    assert 'llmrelay_router_retries_total{deployment="d",model="m"} 2.0' in text
    assert 'llmrelay_router_fallbacks_total{fallback="f",model="m"} 1.0' in text
    assert 'llmrelay_router_cooldowns_total{deployment="d"} 1.0' in text
