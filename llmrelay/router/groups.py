"""Which deployment serves a request: groups of deployments under one public model name.

A requested name resolves, first match wins, to
1. the group of exactly that name;
2. the one group whose name is the requested name behind a provider prefix ("o1-pro" ->
   "openai/o1-pro": clients such as the OpenAI Agents SDK strip that prefix); when several
   groups fit, the name is ambiguous: a 404 that lists them, unless a wildcard serves it;
3. the most specific wildcard entry that matches ("anthropic/*" before "*"), with the
   requested name put into its model, as LiteLLM routes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import re
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from .. import errors
from ..providers.base import Call
from ..providers.registry import PROVIDERS, Deployment
from . import strategies
from .cooldown import Cooldowns
from .failover import Failover, RouterEvents
from .policy import RetryPolicy
from .settings import RoutingSettings
from .shared import Shared, connect
from .strategies import _weight

_FILLED_CACHE = 1024
log = logging.getLogger("llmrelay")


@dataclass(frozen=True, slots=True)
class Wildcard:
    """A model_list entry whose model_name holds `*` ("anthropic/*", "*"). `build` applies the
    entry's litellm_params to one concrete "<provider>/<model>" string; `id` names the entry
    and is stable across processes."""

    pattern: str
    model: str  # litellm_params.model: "anthropic/*", "openai/*", "*", or a fixed model
    build: Callable[[str], Deployment]
    id: str
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = "(.*)".join(re.escape(part) for part in self.pattern.split("*"))
        object.__setattr__(self, "regex", re.compile(regex, re.DOTALL))

    @property
    def specificity(self) -> int:
        """How much of the pattern is literal: "anthropic/claude-*" beats "anthropic/*" beats "*"."""
        return len(self.pattern) - self.pattern.count("*")

    def target(self, requested: str) -> str | None:
        """The model this entry sends upstream for `requested`, or None when it does not match.
        Each `*` of the model takes the part the pattern's `*` matched, in order; a model
        with fewer `*`s than the pattern takes the whole requested name."""
        match = self.regex.fullmatch(requested)
        if match is None:
            return None
        parts = match.groups()
        wildcards = self.model.count("*")
        if not wildcards:
            return self.model
        if len(parts) > wildcards:
            return requested
        model = self.model
        for part in parts:
            model = model.replace("*", part, 1)
        return model

    def deployment(self, model: str, requested: str) -> Deployment:
        dep = self.build(model)
        return replace(dep, model_name=requested, id=f"{self.id}:{dep.provider.name}")


class Router:
    """Resolves names to groups and picks a deployment of the group: from the lowest `order`
    first, skipping deployments cooling down or at their `max_parallel_requests`, then as the
    routing strategy says (strategies.py). `failover` walks retries and fallbacks after a
    failure; the relay reports calls to `started` / `first_token` / `finished` when `tracks`."""

    def __init__(
        self,
        deployments: Iterable[Deployment],
        wildcards: Iterable[Wildcard] = (),
        settings: RoutingSettings | None = None,
    ) -> None:
        self.settings = settings or RoutingSettings()
        s = self.settings
        self.cooldowns = Cooldowns(allowed_fails=s.allowed_fails, policy=s.allowed_fails_policy,
                                   cooldown_time=s.cooldown_time, enabled=not s.disable_cooldowns)  # fmt: skip
        self._cooling = self.cooldowns.until  # the same dict, read on every pick
        self.retry = RetryPolicy(s.num_retries, s.retry_policy, s.retry_after)
        self.strategy = strategies.make(s.routing_strategy)
        self.tracks = self.strategy.tracks  # the relay reports calls to the strategy
        # what `continues` reads for each stream, worked out once
        self._mid_stream = s.mid_stream_fallback
        self._always_continues = bool(s.retry_policy or s.default_fallbacks)
        self._fallen = frozenset(s.fallbacks)
        self.shared: Shared | None = None
        if s.redis_url is not None:
            self.shared = Shared(connect(s.redis_url), self.cooldowns)
            self.cooldowns.shared = self.shared
        # usage-based routing with Redis: each request takes its place in the shared rpm first
        self.reserves = self.shared is not None and isinstance(self.strategy, strategies.UsageBased)
        self._pending: set[asyncio.Task[None]] = set()
        self.events: RouterEvents | None = None  # retries, fallbacks, cooldowns told to the metrics
        self.groups: dict[str, list[Deployment]] = {}
        for dep in deployments:
            self.groups.setdefault(dep.model_name, []).append(dep)
        # max_parallel_requests (or router_settings.default_max_parallel_requests) per deployment
        default = s.default_max_parallel_requests
        self._parallel = {d.id: limit for g in self.groups.values() for d in g
                          if (limit := d.extra.get("max_parallel_requests", default))}  # fmt: skip
        self.in_flight: dict[str, int] = {}
        self.tracks = self.tracks or bool(self._parallel)
        # Plain random choice unless some deployment asks for weights or an order.
        self._simple = not self.tracks and not any(
            _weight(d) is not None or "order" in d.extra for g in self.groups.values() for d in g
        )
        self._by_id = {dep.id: dep for group in self.groups.values() for dep in group}
        self._bare: dict[str, list[str]] = {}
        for name in self.groups:
            prefix, _, rest = name.partition("/")
            if rest and prefix in PROVIDERS:
                self._bare.setdefault(rest, []).append(name)
        patterns: dict[str, list[Wildcard]] = {}
        for wildcard in wildcards:
            patterns.setdefault(wildcard.pattern, []).append(wildcard)
        # most specific first; `sorted` keeps config order among equals
        self.wildcards = sorted(patterns.values(), key=lambda entries: -entries[0].specificity)
        self._wildcard_ids = {w.id: w for entries in self.wildcards for w in entries}
        self._filled: dict[tuple[str, str], Deployment] = {}

    def names(self) -> list[str]:
        """The names `/v1/models` lists: every exact name, then each wildcard pattern."""
        return [*self.groups, *(entries[0].pattern for entries in self.wildcards)]

    def pick(self, model: str, prefer: str | None = None, *, fallbacks: bool = True) -> Deployment:
        """A deployment serving `model`; the one named by `prefer` (a Deployment.id) when it
        serves it, so a continuation lands where the upstream already holds the state.
        A name nothing serves is a 404 `model_not_found`; a group cooling down as a whole goes
        to its fallbacks (with `fallbacks`), else is a 429."""
        group = self.groups.get(model)
        if group is not None:
            if self._simple and not self._cooling:  # the common case, kept as cheap as a plain shuffle
                return _choose(group, prefer)
            return self._choose(model, group, prefer, fallbacks)
        bare = self._bare.get(model, ())
        if len(bare) == 1:
            return self._choose(bare[0], self.groups[bare[0]], prefer, fallbacks)
        for entries in self.wildcards:
            if (dep := self._fill(entries, model, prefer)) is not None:
                return dep
        if bare:
            names = ", ".join(f"'{n}'" for n in sorted(bare))
            raise errors.not_found(
                f"The model '{model}' is ambiguous: it could be any of {names}. Ask for one of them by its full name.",
                param="model",
                code="model_not_found",
            )
        raise errors.not_found(
            f"The model '{model}' does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )

    def _choose(self, name: str, group: list[Deployment], prefer: str | None, fallbacks: bool) -> Deployment:
        if self._simple and not self._cooling:
            return _choose(group, prefer)
        if prefer is not None and not self.cooldowns.cooling(prefer):
            for dep in group:
                if dep.id == prefer:
                    return dep
        dep = self.choose(group)
        if dep is not None:
            return dep
        for fallback in self.settings.fallbacks_for(name) if fallbacks else ():  # all are cooling down
            with contextlib.suppress(errors.APIStatusError):
                return self.pick(fallback, fallbacks=False)
        raise self.exhausted(name)

    def choose(self, group: Sequence[Deployment], exclude: Collection[str] = ()) -> Deployment | None:
        """A healthy deployment of `group` outside `exclude`, from the lowest order present;
        None when every one is cooling down or excluded."""
        cooling = self.cooldowns.cooling
        healthy = [d for d in group if d.id not in exclude and not cooling(d.id)]
        if self._parallel:
            healthy = [d for d in healthy if self.in_flight.get(d.id, 0) < self._parallel.get(d.id, 1 << 30)]
        if not healthy:
            return None
        if not self._simple:
            first = min(_order(d) for d in healthy)
            healthy = [d for d in healthy if _order(d) == first]
            if (chosen := self.strategy.choose(healthy)) is not None:
                return chosen
            return self._spill(group, exclude, first)
        return healthy[0] if len(healthy) == 1 else random.choice(healthy)

    def _spill(self, group: Sequence[Deployment], exclude: Collection[str], full: int) -> Deployment | None:
        """The tiers after `full`, whose deployments were all at their limits."""
        rest = [d for d in group if _order(d) > full]
        return self.choose(rest, exclude) if rest else None

    # -- what the relay reports, for the strategies that measure ---------------------------------

    async def reserve(self, call: Call) -> Deployment:
        """Usage-based routing shared through Redis: the call's deployment if it still has room
        this minute for every instance, else another of its group that has; a 429 when none has."""
        assert self.shared is not None
        group, tried = self.group_of(call.deployment), set[str]()
        dep: Deployment | None = call.deployment
        while dep is not None:
            rpm, tpm = dep.extra.get("rpm"), dep.extra.get("tpm")
            try:
                if await self.shared.take_request(dep.id, rpm, tpm):
                    return dep
            except Exception as exc:  # Redis down: this instance's own counts still apply
                log.warning("usage counters: Redis unavailable (%s); counting in this process", exc)
                return dep
            tried.add(dep.id)
            dep = self.choose(group, exclude=tried)
        raise self.exhausted(call.deployment.model_name)

    def started(self, call: Call) -> None:
        dep_id = call.deployment.id
        call.started = (dep_id, time.monotonic())
        self.strategy.started(dep_id)
        if self._parallel:
            self.in_flight[dep_id] = self.in_flight.get(dep_id, 0) + 1

    def first_token(self, call: Call) -> None:
        if call.started is not None:
            dep_id, t0 = call.started
            self.strategy.first_token(dep_id, time.monotonic() - t0)

    def finished(self, call: Call, *, ok: bool, tokens: int = 0) -> None:
        if call.started is not None:
            dep_id, t0 = call.started
            call.started = None
            self.strategy.finished(dep_id, time.monotonic() - t0 if ok else None, tokens)
            if self._parallel:
                self.in_flight[dep_id] = max(0, self.in_flight.get(dep_id, 0) - 1)
            if self.reserves and tokens:
                task = asyncio.ensure_future(self._add_tokens(dep_id, tokens))
                self._pending.add(task)  # held until done: a task nobody references may vanish
                task.add_done_callback(self._pending.discard)

    async def _add_tokens(self, dep_id: str, tokens: int) -> None:
        assert self.shared is not None
        try:
            await self.shared.add_tokens(dep_id, tokens)
        except Exception as exc:
            log.warning("usage counters: could not add tokens for %s: %s", dep_id, exc)

    def group_of(self, dep: Deployment) -> list[Deployment]:
        """The deployments that serve the same name as `dep` (a wildcard's fill: just itself)."""
        group = self.groups.get(dep.model_name)
        return group if group is not None and dep in group else [dep]

    def exhausted(self, name: str) -> errors.APIStatusError:
        left = [s for d in self.groups.get(name, ()) if (s := self.cooldowns.remaining().get(d.id)) is not None]
        wait = max(1, math.ceil(min(left))) if left else int(self.settings.cooldown_time)
        return errors.status_error(
            429,
            f"No deployment of '{name}' is available: each is cooling down after failures or at its "
            "rpm, tpm or parallel-request limit. "
            f"Try again in {wait} seconds.",
            code="no_deployments_available",
            headers={"retry-after": str(wait)},
        )

    def continues(self, requested: str, dep: Deployment, retries: int) -> bool:
        """Whether a stream that breaks could go on somewhere: a retry or a fallback is left."""
        if not self._mid_stream:
            return False
        return retries > 0 or self._always_continues or requested in self._fallen or dep.model_name in self._fallen

    def failover(self, requested: str, first: Deployment, retries: int) -> Failover:
        return Failover(self, requested, first, retries)

    async def start(self) -> None:
        """Join the shared state (Redis), when configured: every instance's cooldowns apply."""
        if self.shared is not None:
            await self.shared.start()

    async def aclose(self) -> None:
        if self.shared is not None:
            await self.shared.close()

    def deployment(self, dep_id: str) -> Deployment | None:
        """The deployment with this id, as `pick` made it, in any process with the same config:
        a stored response names its deployment by id only."""
        if dep := self._by_id.get(dep_id):
            return dep
        entry_id, _, provider = dep_id.rpartition(":")
        wildcard = self._wildcard_ids.get(entry_id)
        if wildcard is None or provider not in PROVIDERS:
            return None
        # the model is not needed to reach a stored response: its id is
        return wildcard.deployment(f"{provider}/*", "")

    def _fill(self, entries: Sequence[Wildcard], model: str, prefer: str | None) -> Deployment | None:
        if entries[0].regex.fullmatch(model) is None:
            return None
        entry = _choose(entries, prefer.rpartition(":")[0] if prefer else None)
        key = (entry.id, model)
        dep = self._filled.get(key)
        if dep is None:
            if len(self._filled) >= _FILLED_CACHE:  # any name may come in: keep the cache bounded
                self._filled.clear()
            dep = self._filled[key] = entry.deployment(entry.target(model) or model, model)
        return dep


_T = TypeVar("_T", Deployment, Wildcard)


def _choose(group: Sequence[_T], prefer: str | None) -> _T:
    if prefer is not None:
        for dep in group:
            if dep.id == prefer:
                return dep
    return group[0] if len(group) == 1 else random.choice(group)


def _order(dep: Deployment) -> int:
    order = dep.extra.get("order")
    return order if isinstance(order, int) else 1_000_000
