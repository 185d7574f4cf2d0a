"""Routing strategies: which healthy deployment of a group takes the next request.

`simple-shuffle` draws at random (weighted by `weight`, else `rpm`, else `tpm`) and measures
nothing. The others learn from every call the relay reports (`started`, `first_token`,
`finished`): `least-busy` takes the deployment with the fewest calls in flight,
`latency-based-routing` the fastest one (time to first token for streams, the whole reply
otherwise; one not measured yet is tried first), `usage-based-routing-v2` the one with the
fewest tokens this minute among those under their `rpm` and `tpm`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

from ..providers.registry import Deployment

STRATEGIES = ("simple-shuffle", "least-busy", "latency-based-routing", "usage-based-routing-v2")
LATENCY_WEIGHT = 0.3  # how much a new sample moves the running latency (an exponential average)


class Strategy:
    tracks = False  # whether the relay must report calls to it

    def choose(self, healthy: Sequence[Deployment]) -> Deployment | None:
        weights = [_weight(d) for d in healthy]
        if any(w is not None for w in weights):
            return random.choices(healthy, [w if w is not None else 1.0 for w in weights])[0]
        return healthy[0] if len(healthy) == 1 else random.choice(healthy)

    def started(self, dep_id: str) -> None:
        pass

    def first_token(self, dep_id: str, seconds: float) -> None:
        pass

    def finished(self, dep_id: str, seconds: float | None, tokens: int) -> None:
        """A call ended: `seconds` its latency (None: it failed), `tokens` its total usage."""


class LeastBusy(Strategy):
    tracks = True

    def __init__(self) -> None:
        self.in_flight: dict[str, int] = {}

    def choose(self, healthy: Sequence[Deployment]) -> Deployment | None:
        return _lowest(healthy, lambda d: self.in_flight.get(d.id, 0))

    def started(self, dep_id: str) -> None:
        self.in_flight[dep_id] = self.in_flight.get(dep_id, 0) + 1

    def finished(self, dep_id: str, seconds: float | None, tokens: int) -> None:
        self.in_flight[dep_id] = max(0, self.in_flight.get(dep_id, 0) - 1)


class LatencyBased(Strategy):
    tracks = True

    def __init__(self) -> None:
        self.latency: dict[str, float] = {}
        self._ttft: set[str] = set()  # deployments whose stream reported its first token

    def choose(self, healthy: Sequence[Deployment]) -> Deployment | None:
        return _lowest(healthy, lambda d: self.latency.get(d.id, 0.0))

    def first_token(self, dep_id: str, seconds: float) -> None:
        self._sample(dep_id, seconds)
        self._ttft.add(dep_id)

    def finished(self, dep_id: str, seconds: float | None, tokens: int) -> None:
        if dep_id in self._ttft:  # a stream: its first token was the sample
            self._ttft.discard(dep_id)
        elif seconds is not None:
            self._sample(dep_id, seconds)

    def _sample(self, dep_id: str, seconds: float) -> None:
        old = self.latency.get(dep_id)
        self.latency[dep_id] = seconds if old is None else old + LATENCY_WEIGHT * (seconds - old)


class UsageBased(Strategy):
    """Requests and tokens per deployment in the current minute (a fixed window, as LiteLLM's)."""

    tracks = True

    def __init__(self) -> None:
        self.minute = 0
        self.rpm: dict[str, int] = {}
        self.tpm: dict[str, int] = {}

    def choose(self, healthy: Sequence[Deployment]) -> Deployment | None:
        self._roll()
        under = [d for d in healthy if self.has_room(d)]
        return _lowest(under, lambda d: self.tpm.get(d.id, 0)) if under else None

    def has_room(self, dep: Deployment) -> bool:
        rpm, tpm = dep.extra.get("rpm"), dep.extra.get("tpm")
        if rpm is not None and self.rpm.get(dep.id, 0) >= rpm:
            return False
        return tpm is None or self.tpm.get(dep.id, 0) < tpm

    def started(self, dep_id: str) -> None:
        self._roll()
        self.rpm[dep_id] = self.rpm.get(dep_id, 0) + 1

    def finished(self, dep_id: str, seconds: float | None, tokens: int) -> None:
        self._roll()
        if tokens:
            self.tpm[dep_id] = self.tpm.get(dep_id, 0) + tokens

    def _roll(self) -> None:
        minute = int(time.time() // 60)
        if minute != self.minute:
            self.minute, self.rpm, self.tpm = minute, {}, {}


def make(name: str) -> Strategy:
    return {"least-busy": LeastBusy, "latency-based-routing": LatencyBased,
            "usage-based-routing-v2": UsageBased}.get(name, Strategy)()  # fmt: skip


def _lowest(healthy: Sequence[Deployment], key: object) -> Deployment | None:
    if not healthy:
        return None
    scores = [key(d) for d in healthy]  # type: ignore[operator]
    best = min(scores)
    return random.choice([d for d, s in zip(healthy, scores, strict=True) if s == best])


def _weight(dep: Deployment) -> float | None:
    """LiteLLM's simple-shuffle weight: `weight`, else `rpm`, else `tpm`."""
    for key in ("weight", "rpm", "tpm"):
        if (value := dep.extra.get(key)) is not None:
            return float(value)
    return None
