"""Health checks: every deployment asked for a minimal reply (`GET /health`, LiteLLM's shape),
and, with `background_health_checks`, on a timer whose failures put deployments into a
cooldown, so requests skip them before any of them fails."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import openai

from ..ids import new_id
from ..providers.base import Call
from ..providers.registry import Deployment, require_key
from ..upstream import parsed

if TYPE_CHECKING:
    from ..relay import Relay

log = logging.getLogger("llmrelay")
Json = dict[str, Any]
CHECK_TIMEOUT = 30.0
PROBE = {"input": "ping", "max_output_tokens": 16, "store": False}


async def check(relay: Relay, dep: Deployment) -> str | None:
    """None when the deployment answers a minimal request, else what went wrong."""
    if dep.provider.api == "mock" or "mock_response" in dep.extra:
        return None
    timeout = min(dep.timeout or CHECK_TIMEOUT, CHECK_TIMEOUT)
    call = Call(id=new_id("resp"), params={"model": dep.model_name, **PROBE}, deployment=dep, input_items=[],
                created_at=int(time.time()), new_id=new_id, timeout=timeout)  # fmt: skip
    adapter = relay.adapter(dep)
    try:
        require_key(dep)
        body = await relay.fetch(adapter.build_request(call), adapter, dep, timeout=call.timeout, retries=0)
        parsed(dep, adapter.parse_response, body, call)
    except openai.APIError as exc:
        return exc.message
    except Exception as exc:  # a check must never take the proxy down
        log.warning("health check of %s failed: %r", dep.id, exc)
        return "The health check failed."
    return None


def endpoint(dep: Deployment) -> Json:
    return {"model": f"{dep.provider.name}/{dep.model}", "model_name": dep.model_name, "model_id": dep.id,
            "api_base": dep.api_base}  # fmt: skip


class Health:
    def __init__(self, relay: Relay, interval: float | None) -> None:
        self.relay = relay
        self.interval = interval  # None: checks run on request only
        self.latest: Json | None = None
        self._task: asyncio.Task[None] | None = None

    def deployments(self) -> list[Deployment]:
        router = self.relay.router
        return [d for group in (router.groups.values() if router else ()) for d in group]

    async def run(self) -> Json:
        """Check every deployment at once; unhealthy ones cool down until the next check."""
        deps = self.deployments()
        results = await asyncio.gather(*(check(self.relay, d) for d in deps))
        healthy, unhealthy = [], []
        router = self.relay.router
        for dep, error in zip(deps, results, strict=True):
            if error is None:
                healthy.append(endpoint(dep))
                continue
            unhealthy.append({**endpoint(dep), "error": error})
            if router is not None and self.interval:
                await router.cooldowns.cool(dep.id, max(self.interval, router.cooldowns.cooldown_time))
        self.latest = {"healthy_endpoints": healthy, "unhealthy_endpoints": unhealthy,
                       "healthy_count": len(healthy), "unhealthy_count": len(unhealthy)}  # fmt: skip
        return self.latest

    async def report(self) -> Json:
        """`GET /health`: the background checks' latest results, else a check now."""
        if self.interval and self.latest is not None:
            return self.latest
        return await self.run()

    def start(self) -> None:
        if self.interval and self._task is None:
            self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        assert self.interval
        while True:
            try:
                await self.run()
            except Exception:
                log.exception("background health checks failed")
            await asyncio.sleep(self.interval)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
