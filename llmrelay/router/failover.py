"""One request's way past failures: retries within its group, then its fallback groups.

Built only once a call has failed, so a request that succeeds pays nothing for it. Each
failure is counted towards the deployment's cooldown. A retry goes to another healthy
deployment of the group when there is one (at once), else to the same one after a backoff
that honours Retry-After. Once the group's retries for the error's class are spent, the
fallback groups for that class are tried in order, each with its own retries.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from .. import errors
from ..providers.registry import Deployment
from .policy import classify

if TYPE_CHECKING:
    from .groups import Router

log = logging.getLogger("llmrelay")
_FALLBACK_KIND = {"ContextWindowExceededError": "context_window", "ContentPolicyViolationError": "content_policy"}


class RouterEvents(Protocol):
    """Who hears of retries, fallbacks and cooldowns (the Prometheus metrics, when on)."""

    def retried(self, model: str, deployment: str) -> None: ...
    def fell_back(self, model: str, fallback: str) -> None: ...
    def cooled(self, deployment: str) -> None: ...


class Failover:
    def __init__(self, router: Router, requested: str, first: Deployment, retries: int) -> None:
        self.router = router
        self.retries = retries
        self.group = router.group_of(first)
        self.tried = {first.id}
        self.attempt = 0  # retries spent in the current group
        self.queue: list[str] | None = None  # fallback groups still to try
        self.names = (requested, first.model_name)
        self.fallbacks_used = 0

    async def next(self, dep: Deployment, err: BaseException) -> tuple[Deployment, float] | None:
        """Where to try next after `dep` failed with `err`, and how long to wait first; None:
        give up (the caller raises `err`)."""
        kind = classify(err)
        events = self.router.events
        if await self.router.cooldowns.failed(dep.id, kind) and events is not None:
            events.cooled(dep.id)
        if self.attempt < self.router.retry.retries(kind, self.retries):
            self.attempt += 1
            other = self.router.choose(self.group, exclude=self.tried)
            if other is not None and _servable(other):
                self.tried.add(other.id)
                log.info("retrying on deployment %s after %s from %s", other.id, kind, dep.id)
                if events is not None:
                    events.retried(self.names[0], other.id)
                return other, 0.0
            again = self.router.choose(self.group)
            if again is not None and _servable(again):
                if events is not None:
                    events.retried(self.names[0], again.id)
                return again, self.router.retry.wait(self.attempt - 1, err)
        if kind == "BadRequestError":  # the request itself is at fault: no group would take it
            return None
        if self.queue is None:
            self.queue = list(self.router.settings.fallbacks_for(*self.names, kind=_FALLBACK_KIND.get(kind, "general")))
        while self.queue and self.fallbacks_used < self.router.settings.max_fallbacks:
            name = self.queue.pop(0)
            self.fallbacks_used += 1
            try:
                target = self.router.pick(name, fallbacks=False)
            except errors.APIStatusError as exc:  # unknown, or cooling down as a whole
                log.warning("fallback %r skipped: %s", name, exc.message)
                continue
            if not _servable(target):
                continue
            log.info("falling back from %s to %r (%s) after %s", dep.id, name, target.id, kind)
            if events is not None:
                events.fell_back(self.names[0], name)
            self.group = self.router.group_of(target)
            self.tried = {target.id}
            self.attempt = 0
            return target, 0.0
        return None


def _servable(dep: Deployment) -> bool:
    """A deployment a failed call can move to: a real upstream, not a mock."""
    return dep.provider.api != "mock" and "mock_response" not in dep.extra
