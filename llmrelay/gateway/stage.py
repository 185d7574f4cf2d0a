"""The stage interface and what a finished call hands to it."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..providers.base import Call
from ..streaming.events import StreamEvent
from .produced import OutputCounter, estimated_usage

log = logging.getLogger("llmrelay.gateway")
Json = dict[str, Any]


@dataclass(slots=True)
class Outcome:
    """How a call ended. `status` is the response's (completed, incomplete, failed, cancelled),
    "error" for a call that failed before producing a response, "refused" for one a stage
    refused, "counted" for a token count."""

    status: str
    usage: Json | None
    latency: float  # seconds from the start of the call to its end
    cost: float = 0.0  # set by the pricing stage, read by the ones after it
    error: str | None = None  # the code a failed response carried


class Stage(Protocol):
    async def before(self, call: Call) -> None:
        """Raise an OpenAI-shaped error to refuse the call."""

    def after(self, call: Call, outcome: Outcome) -> None:
        """Account for a finished call; must not block (queue any I/O)."""


def outcome_of(call: Call, response: Json | None, status: str | None = None) -> Outcome:
    usage = response.get("usage") if response else None
    end = status or (str(response.get("status") or "error") if response else "error")
    outcome = Outcome(end, usage if isinstance(usage, dict) else None, time.monotonic() - call.meta["started"])
    if end == "failed" and response and isinstance(error := response.get("error"), dict):
        outcome.error = str(error.get("code") or "") or None
    return outcome


async def run_before(stages: Sequence[Stage], call: Call) -> None:
    call.meta["started"] = time.monotonic()
    done: list[Stage] = []
    try:
        for stage in stages:
            await stage.before(call)
            done.append(stage)
    except BaseException:
        # the stages that let it through release what they took (a parallel-request slot)
        run_after(done, call, outcome_of(call, None, "refused"))
        raise


def run_after(stages: Sequence[Stage], call: Call, outcome: Outcome) -> None:
    if call.meta.get("ended"):
        return  # a call is accounted once, whichever path ends it first
    call.meta["ended"] = True
    call.meta["outcome"] = outcome
    for stage in stages:
        try:
            stage.after(call, outcome)
        except Exception:  # accounting must never break a response that was already produced
            log.exception("stage %s failed after %s", type(stage).__name__, call.id)


async def staged(stages: Sequence[Stage], call: Call, events: AsyncIterator[StreamEvent]) -> AsyncIterator[StreamEvent]:
    """A stream whose terminal event (or early end) runs the after-stages: a stream is charged
    for the usage its terminal event reports; one that ends without it (cut short by a client
    gone or a job cancelled, or failed before the provider's usage) for what it produced, as
    `produced.py` estimates it. The time of the first output delta is noted when a stage asked
    for it (telemetry's time to first token)."""
    produced = OutputCounter()
    timing = "first_token" in call.meta
    try:
        async for event in events:
            if produced.see(event):
                if timing:
                    call.meta["first_token"] = time.monotonic()
                    timing = False
            elif event.terminal and not call.meta.get("ended"):
                response = event.data.get("response")
                # an `error` event carries no response: what came before it is what was produced
                outcome = outcome_of(call, response) if isinstance(response, dict) else outcome_of(call, None, "failed")
                if outcome.usage is None:
                    outcome.usage = estimated_usage(call, produced.tokens)
                run_after(stages, call, outcome)
            yield event
    finally:
        if not call.meta.get("ended"):
            outcome = outcome_of(call, None, "cancelled")
            outcome.usage = estimated_usage(call, produced.tokens)
            run_after(stages, call, outcome)
