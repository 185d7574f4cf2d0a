"""The one record each call leaves for telemetry, made once when it ends.

Every sink (Prometheus, traces, the JSON log, webhooks) reads this record rather than the call,
so what the gateway knows about a call is gathered in one place: model, deployment, provider,
key alias and team, status, latency, time to the first token, tokens, cost, the error's class.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import openai

from ..gateway.stage import Outcome
from ..providers.base import Call

SUCCESS = frozenset({"completed", "incomplete"})
Json = dict[str, Any]


@dataclass(slots=True)
class Record:
    request_id: str | None  # the x-request-id the response carried
    response_id: str
    model: str  # as the client asked for it
    deployment: str  # the one that answered, after any retry or fallback
    provider: str
    key_alias: str | None
    team: str | None
    status: str  # completed, incomplete, failed, cancelled, error, refused, counted
    error_class: str | None
    latency: float  # seconds
    ttft: float | None  # seconds to the first output delta of a stream
    input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cached_tokens: int
    cost: float
    stream: bool
    background: bool
    start_time: float  # unix seconds

    @property
    def ok(self) -> bool:
        return self.status in SUCCESS

    def as_json(self) -> Json:
        return asdict(self)


def record_of(call: Call, outcome: Outcome) -> Record:
    usage = outcome.usage or {}
    caller = call.meta.get("caller")
    key_alias = team = None
    if caller is not None:
        key_alias = caller.key.record.get("key_alias")
        if caller.team is not None:
            team = caller.team.record.get("team_alias") or caller.team.id
    meta = call.meta
    started = meta.get("started")
    first = meta.get("first_token")
    status = outcome.status
    latency = outcome.latency
    deployment = call.deployment
    output_details = usage.get("output_tokens_details") or {}
    input_details = usage.get("input_tokens_details") or {}
    return Record(  # positionally, in the fields' order: every call pays for this one
        meta.get("request_id"),
        call.id,
        str(call.params.get("model")),
        deployment.id,
        deployment.provider.name,
        key_alias,
        team,
        status,
        None if status in SUCCESS else _error_class(outcome),
        latency,
        first - started if first is not None and started is not None else None,
        int(usage.get("input_tokens") or 0),
        int(usage.get("output_tokens") or 0),
        int(output_details.get("reasoning_tokens") or 0),
        int(input_details.get("cached_tokens") or 0),
        outcome.cost,
        call.stream,
        call.job,
        time.time() - latency,
    )


def _error_class(outcome: Outcome) -> str | None:
    """A bounded name for why a call failed: the openai error class it raised (the stages run
    while it propagates), else the error code its failed response carried."""
    exc = sys.exc_info()[1]
    if isinstance(exc, openai.APIError):
        return type(exc).__name__
    if exc is not None and not isinstance(exc, GeneratorExit):
        return "InternalError"
    if outcome.error:
        return outcome.error[:64]
    return None if outcome.status == "cancelled" else "ResponseFailed"
