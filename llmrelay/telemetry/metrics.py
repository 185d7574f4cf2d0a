"""Prometheus metrics, served at `GET /metrics`.

Imported only when `prometheus` is switched on. With several workers the CLI points
PROMETHEUS_MULTIPROC_DIR at a fresh directory before they start: each worker writes its values
to files there and a scrape of any worker sums them all (prometheus_client's multiprocess mode).

Labels are bounded: configured model names, deployment ids, providers, key aliases, teams,
statuses and error classes; never a response id or anything a client wrote.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

try:
    import prometheus_client as prom
    from prometheus_client import multiprocess
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("Prometheus metrics need prometheus-client: pip install 'llmrelay[metrics]'") from exc

from .record import Record

CALL = ("model", "deployment", "provider")
WHO = (*CALL, "key_alias", "team")
LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
FIRST_TOKEN = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
STORE = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)
TOKEN_TYPES = ("input", "output", "reasoning", "cached")


class Metrics:
    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        r = self.registry = prom.CollectorRegistry(auto_describe=True)
        self.requests = prom.Counter("llmrelay_requests", "Calls by how they ended", [*WHO, "status"], registry=r)
        self.latency = prom.Histogram(
            "llmrelay_request_duration_seconds", "Seconds from a call's start to its end", CALL, buckets=LATENCY,
            registry=r,
        )  # fmt: skip
        self.first_token = prom.Histogram(
            "llmrelay_time_to_first_token_seconds", "Seconds from a streamed call's start to its first output delta",
            CALL, buckets=FIRST_TOKEN, registry=r,
        )  # fmt: skip
        self.tokens = prom.Counter("llmrelay_tokens", "Tokens by type", [*WHO, "type"], registry=r)
        self.cost = prom.Counter("llmrelay_cost_usd", "What the calls cost, in US dollars", WHO, registry=r)
        self.errors = prom.Counter(
            "llmrelay_errors", "Failed calls by the class of their error", [*CALL, "error_class"], registry=r
        )
        self.in_flight = prom.Gauge(
            "llmrelay_requests_in_flight", "Calls started and not ended", registry=r, multiprocess_mode="livesum"
        )
        self.jobs = prom.Counter("llmrelay_background_jobs", "Background responses by how they ended", ["status"],
                                 registry=r)  # fmt: skip
        self.retries = prom.Counter("llmrelay_router_retries", "Retries after a failed call", ["model", "deployment"],
                                    registry=r)  # fmt: skip
        self.fallbacks = prom.Counter(
            "llmrelay_router_fallbacks", "Calls moved to a fallback model", ["model", "fallback"], registry=r
        )
        self.cooldowns = prom.Counter(
            "llmrelay_router_cooldowns", "Deployments put into a cooldown", ["deployment"], registry=r
        )
        self.store = prom.Histogram(
            "llmrelay_store_operation_duration_seconds", "Seconds a store operation took", ["operation"],
            buckets=STORE, registry=r,
        )  # fmt: skip
        self._series: dict[tuple[Any, ...], tuple[Any, ...]] = {}

    # -- per call ----------------------------------------------------------------------------

    def started(self) -> None:
        self.in_flight.inc()

    def emit(self, record: Record) -> None:
        self.in_flight.dec()
        who = (record.model, record.deployment, record.provider, record.key_alias or "", record.team or "")
        series = self._series.get(who) or self._bind(who)
        requests, latency, first_token, tokens, cost = series
        child = requests.get(record.status)
        if child is None:
            child = requests[record.status] = self.requests.labels(*who, record.status)
        child.inc()
        latency.observe(record.latency)
        if record.ttft is not None:
            first_token.observe(record.ttft)
        for counter, n in zip(
            tokens,
            (record.input_tokens, record.output_tokens, record.reasoning_tokens, record.cached_tokens),
            strict=True,
        ):
            if n:
                counter.inc(n)
        if record.cost:
            cost.inc(record.cost)
        if record.error_class is not None:
            self.errors.labels(*who[:3], record.error_class).inc()
        if record.background:
            self.jobs.labels(record.status).inc()

    def _bind(self, who: tuple[str, ...]) -> tuple[Any, ...]:
        """The label children of one (model, deployment, provider, key, team), looked up once."""
        call = who[:3]
        series = (
            {},
            self.latency.labels(*call),
            self.first_token.labels(*call),
            tuple(self.tokens.labels(*who, t) for t in TOKEN_TYPES),
            self.cost.labels(*who),
        )
        if len(self._series) < 10_000:  # a bound on memory, whatever the label values
            self._series[who] = series
        return series

    # -- the router's events (router.events) ---------------------------------------------------

    def retried(self, model: str, deployment: str) -> None:
        self.retries.labels(model, deployment).inc()

    def fell_back(self, model: str, fallback: str) -> None:
        self.fallbacks.labels(model, fallback).inc()

    def cooled(self, deployment: str) -> None:
        self.cooldowns.labels(deployment).inc()

    # -- the store ---------------------------------------------------------------------------

    def timed(self, name: str, op: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        observe = self.store.labels(name).observe
        clock = time.perf_counter

        async def timed(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                return await op(*args, **kwargs)
            finally:
                observe(clock() - start)

        return timed

    # -- exposition --------------------------------------------------------------------------

    def scrape(self) -> tuple[bytes, str]:
        if self.multiprocess:  # every worker's files, summed
            registry = prom.CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return prom.generate_latest(registry), prom.CONTENT_TYPE_LATEST
        return prom.generate_latest(self.registry), prom.CONTENT_TYPE_LATEST


def prepare_multiprocess_dir(path: str) -> None:
    """Empty the directory the workers will write to: values of an earlier run must not count."""
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))


def worker_exited(pid: int) -> None:
    """A dead worker's live gauges (in-flight calls) stop counting."""
    multiprocess.mark_process_dead(pid)
