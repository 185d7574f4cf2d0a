"""Prometheus metrics, served at `GET /metrics`.

Imported only when `prometheus` is switched on. With several workers the CLI points
PROMETHEUS_MULTIPROC_DIR at a fresh directory before they start: each worker writes its values
to files there and a scrape of any worker sums them all (prometheus_client's multiprocess mode).

A call does not touch prometheus_client: each `.inc()` or `.observe()` takes a lock, and with
several workers writes an mmap'd file, a dozen times a call. A call queues its record instead
(router events and store timings likewise); a thread sums the queue every FLUSH_INTERVAL and
writes each series once per pass, a histogram's buckets by how many observations fell in them.
A scrape first flushes its own worker, so it sees all of that worker's ended calls; another
worker's calls reach it at most FLUSH_INTERVAL (plus that thread's scheduling) after they end.

Labels are bounded: configured model names, deployment ids, providers, key aliases, teams,
statuses and error classes; never a response id or anything a client wrote.
"""

from __future__ import annotations

import os
import threading
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
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
FLUSH_INTERVAL = 0.5  # seconds: the most an ended call waits before every worker's scrape counts it
MAX_CHILDREN = 10_000  # label-bound children kept: a bound on memory, whatever the label values

Labels = tuple[str, ...]


class Observed:
    """Observations of one histogram series since the last flush: their sum and per-bucket counts."""

    __slots__ = ("buckets", "sum")

    def __init__(self, size: int) -> None:
        self.sum = 0.0
        self.buckets = [0] * size

    def add(self, bounds: Sequence[float], value: float) -> None:
        self.sum += value
        self.buckets[bisect_left(bounds, value)] += 1  # the first bucket whose bound is >= value, as observe()


class Calls:
    """What the calls of one (model, deployment, provider, key alias, team) left since the last flush."""

    __slots__ = ("cost", "first_token", "latency", "statuses", "tokens")

    def __init__(self) -> None:
        self.statuses: dict[str, int] = {}
        self.latency = Observed(len(LATENCY) + 1)  # + the +Inf bucket
        self.first_token: Observed | None = None
        self.tokens = [0, 0, 0, 0]  # TOKEN_TYPES
        self.cost = 0.0

    def add(self, record: Record) -> None:
        statuses = self.statuses
        statuses[record.status] = statuses.get(record.status, 0) + 1
        self.latency.add(LATENCY, record.latency)
        if record.ttft is not None:
            if self.first_token is None:
                self.first_token = Observed(len(FIRST_TOKEN) + 1)
            self.first_token.add(FIRST_TOKEN, record.ttft)
        tokens = self.tokens
        tokens[0] += record.input_tokens
        tokens[1] += record.output_tokens
        tokens[2] += record.reasoning_tokens
        tokens[3] += record.cached_tokens
        self.cost += record.cost


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
        # The event loop appends, the flush pops from the other end: a deque is safe for both.
        self.queue: deque[Any] = deque()
        self.active = 0  # calls started and not ended (written by the event loop only)
        self._written_active: int | None = None
        self._children: dict[tuple[Any, Labels], Any] = {}
        self._flushing = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="llmrelay-metrics", daemon=True)
        self._thread.start()

    # -- per call: counted in memory ------------------------------------------------------------

    def started(self) -> None:
        self.active += 1

    def emit(self, record: Record) -> None:
        self.active -= 1
        self.queue.append(record)

    # -- the router's events (router.events) ---------------------------------------------------

    def retried(self, model: str, deployment: str) -> None:
        self.queue.append((self.retries, (model, deployment)))

    def fell_back(self, model: str, fallback: str) -> None:
        self.queue.append((self.fallbacks, (model, fallback)))

    def cooled(self, deployment: str) -> None:
        self.queue.append((self.cooldowns, (deployment,)))

    # -- the store ---------------------------------------------------------------------------

    def timed(self, name: str, op: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        append = self.queue.append
        clock = time.perf_counter

        async def timed(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                return await op(*args, **kwargs)
            finally:
                append((name, clock() - start))

        return timed

    # -- to prometheus_client ----------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_INTERVAL):
            self.flush()

    def flush(self) -> None:
        """Write what the queue holds, each series once. The requests counter is written last, so
        that whoever sees a call counted there sees the rest of what it and earlier calls left."""
        with self._flushing:
            queue = self.queue
            calls: dict[Labels, Calls] = {}
            counts: dict[tuple[Any, Labels], float] = {}
            observed: dict[tuple[Any, Labels], Observed] = {}
            for _ in range(len(queue)):  # what is there now; calls ending meanwhile wait for the next pass
                item = queue.popleft()
                if type(item) is Record:
                    who = (item.model, item.deployment, item.provider, item.key_alias or "", item.team or "")
                    summed = calls.get(who)
                    if summed is None:
                        summed = calls[who] = Calls()
                    summed.add(item)
                    if item.error_class is not None:
                        series = (self.errors, (*who[:3], item.error_class))
                        counts[series] = counts.get(series, 0) + 1
                    if item.background:
                        series = (self.jobs, (item.status,))
                        counts[series] = counts.get(series, 0) + 1
                elif type(item[0]) is str:  # a store operation's (name, seconds)
                    _observe(observed, self.store, (item[0],), STORE, item[1])
                else:  # a router event's (counter, labels)
                    counts[item] = counts.get(item, 0) + 1
            for who, summed in calls.items():
                call = who[:3]
                self._write(self.latency, call, summed.latency)
                if summed.first_token is not None:
                    self._write(self.first_token, call, summed.first_token)
                for kind, n in zip(TOKEN_TYPES, summed.tokens, strict=True):
                    if n:
                        self._child(self.tokens, (*who, kind)).inc(n)
                if summed.cost:
                    self._child(self.cost, who).inc(summed.cost)
            for (histogram, labels), seen in observed.items():
                self._write(histogram, labels, seen)
            for (counter, labels), amount in counts.items():
                self._child(counter, labels).inc(amount)
            if (active := self.active) != self._written_active:
                self.in_flight.set(active)
                self._written_active = active
            for who, summed in calls.items():
                for status, n in summed.statuses.items():
                    self._child(self.requests, (*who, status)).inc(n)

    def _write(self, histogram: Any, labels: Labels, seen: Observed) -> None:
        child = self._child(histogram, labels)
        child._sum.inc(seen.sum)  # the pieces `observe` writes, each once for many observations
        for bucket, n in zip(child._buckets, seen.buckets, strict=True):
            if n:
                bucket.inc(n)

    def _child(self, metric: Any, labels: Labels) -> Any:
        """A metric's child for these label values, looked up once."""
        child = self._children.get((metric, labels))
        if child is None:
            child = metric.labels(*labels)
            if len(self._children) < MAX_CHILDREN:
                self._children[metric, labels] = child
        return child

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.flush()

    # -- exposition --------------------------------------------------------------------------

    def scrape(self) -> tuple[bytes, str]:
        self.flush()  # this worker's ended calls, all of them
        if self.multiprocess:  # every worker's files, summed
            registry = prom.CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return prom.generate_latest(registry), prom.CONTENT_TYPE_LATEST
        return prom.generate_latest(self.registry), prom.CONTENT_TYPE_LATEST


def _observe(
    observed: dict[tuple[Any, Labels], Observed], histogram: Any, labels: Labels, bounds: Sequence[float], value: float
) -> None:
    seen = observed.get((histogram, labels))
    if seen is None:
        seen = observed[histogram, labels] = Observed(len(bounds) + 1)  # + the +Inf bucket
    seen.add(bounds, value)


def prepare_multiprocess_dir(path: str) -> None:
    """Empty the directory the workers will write to: values of an earlier run must not count."""
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))


def worker_exited(pid: int) -> None:
    """A dead worker's live gauges (in-flight calls) stop counting."""
    multiprocess.mark_process_dead(pid)
