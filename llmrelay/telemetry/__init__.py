"""Telemetry: Prometheus metrics, OpenTelemetry traces, JSON request logs, webhooks.

Each call leaves one `Record` (record.py) when it ends, made by the closing stage from what
the gateway knows by then (its cost included), and handed to the sinks that are switched on.
Nothing switched on: no telemetry object, no stage, no middleware; the sinks' modules are not
even imported.

Two stages, because refusals and cost pull in opposite directions: `Opening` runs first (the
in-flight count, the span; it also ends a call another stage refused, which never reaches the
later stages), `Closing` runs last, after pricing has set the cost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ..config import Config
from ..gateway.stage import Outcome
from ..providers.base import Call
from .record import Record, record_of
from .settings import TelemetrySettings, telemetry_settings

if TYPE_CHECKING:
    from ..relay import Relay
    from .metrics import Metrics
    from .tracing import Tracing

__all__ = ["Record", "Telemetry", "TelemetrySettings", "build_telemetry", "telemetry_settings"]


class Sink(Protocol):
    def emit(self, record: Record) -> None: ...


class Telemetry:
    def __init__(self, settings: TelemetrySettings) -> None:
        self.settings = settings
        self.metrics: Metrics | None = None
        self.tracing: Tracing | None = None
        self.sinks: list[Sink] = []
        if settings.prometheus:
            from .metrics import Metrics

            self.metrics = Metrics()
        if settings.otel:
            from .tracing import Tracing

            self.tracing = Tracing(settings.otel_endpoint)
        if settings.json_logs:
            from .json_log import JsonLog

            self.sinks.append(JsonLog())
        if settings.webhooks:
            from .webhook import Webhook

            self.sinks += [Webhook(target) for target in settings.webhooks]
        self.opening = Opening(self)
        self.closing = Closing(self)

    def install(self, relay: Relay) -> None:
        """Around the relay's stages (set already), its store and its upstream HTTP."""
        relay.stages = [self.opening, *relay.stages, self.closing]
        if self.metrics is not None and relay.router is not None:
            relay.router.events = self.metrics
        if self.metrics is not None or self.tracing is not None:
            _instrument_store(relay.store, self.metrics, self.tracing)
        if self.tracing is not None:
            relay.http.send = self.tracing.traced_send(relay.http.send)  # type: ignore[method-assign]

    def started(self, call: Call) -> None:
        call.meta["first_token"] = None  # asks the stream for the time of its first delta
        if self.metrics is not None:
            self.metrics.started()
        if self.tracing is not None:
            self.tracing.start(call)

    def ended(self, call: Call, outcome: Outcome) -> None:
        record = record_of(call, outcome)
        if self.metrics is not None:
            self.metrics.emit(record)
        if self.tracing is not None:
            self.tracing.end(call, record)
        for sink in self.sinks:
            sink.emit(record)

    async def aclose(self) -> None:
        for sink in self.sinks:
            if (close := getattr(sink, "aclose", None)) is not None:
                await close()
        if self.metrics is not None:
            self.metrics.close()  # what it still holds reaches prometheus_client (and the worker's files)
        if self.tracing is not None:
            self.tracing.shutdown()


class Opening:
    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry

    async def before(self, call: Call) -> None:
        self.telemetry.started(call)

    def after(self, call: Call, outcome: Outcome) -> None:
        if outcome.status == "refused":  # the closing stage never saw this call
            self.telemetry.ended(call, outcome)


class Closing:
    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry

    async def before(self, call: Call) -> None:
        return None

    def after(self, call: Call, outcome: Outcome) -> None:
        self.telemetry.ended(call, outcome)

    async def aclose(self) -> None:  # Relay.aclose closes its stages: the webhooks send what they hold
        await self.telemetry.aclose()


def build_telemetry(config: Config) -> Telemetry | None:
    """None when nothing is switched on: then the proxy pays for nothing."""
    settings = telemetry_settings(config)
    return Telemetry(settings) if settings.on else None


# The store's operations that a call waits for; the rest (subscribe, listening, close) are not timed.
STORE_OPERATIONS = (
    "put", "get", "delete", "update_active", "renew_lease", "append_events", "events_after", "put_conversation",
    "get_conversation", "delete_conversation", "set_conversation_items", "put_entity", "get_entity",
    "list_entities", "delete_entity", "rename_entity", "record_spend", "spend_logs", "spend_report", "publish",
    "ping",
)  # fmt: skip


def _instrument_store(store: Any, metrics: Metrics | None, tracing: Tracing | None) -> None:
    """Each operation timed (metrics) and traced, on the store object itself, so that every
    holder of it (jobs, conversations, the gateway directory) is measured alike."""
    for name in STORE_OPERATIONS:
        op = getattr(store, name, None)
        if op is None:
            continue
        if tracing is not None:
            op = tracing.timed(name, op)
        if metrics is not None:
            op = metrics.timed(name, op)
        setattr(store, name, op)
