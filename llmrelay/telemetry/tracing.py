"""OpenTelemetry traces: one span per call with the GenAI semantic-convention attributes, a
child span for each upstream HTTP exchange and each store operation; an incoming
`traceparent` is continued. Spans leave over OTLP/HTTP from a batch processor's thread.

Imported only when tracing is switched on (`otel` in the callbacks, or an OTLP endpoint in
the environment).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

try:
    from opentelemetry import context as otel_context
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import SpanKind, Status, StatusCode, get_current_span, set_span_in_context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "OpenTelemetry traces need opentelemetry-sdk and its OTLP exporter: pip install 'llmrelay[otel]'"
    ) from exc

from ..providers.base import Call
from .record import Record

# llmrelay's provider names as the semantic conventions spell them (gen_ai.provider.name)
PROVIDER_NAMES = {
    "anthropic": "anthropic", "gemini": "gcp.gemini", "vertex_ai": "gcp.vertex_ai", "bedrock": "aws.bedrock",
    "azure": "azure.ai.openai", "azure_ai": "azure.ai.inference", "xai": "x_ai", "mistral": "mistral_ai",
}  # fmt: skip
_REQUEST_PARAMS = (
    ("max_output_tokens", "gen_ai.request.max_tokens"),
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
)
Send = Callable[..., Awaitable[Any]]


class Tracing:
    def __init__(self, endpoint: str | None = None) -> None:
        service = os.environ.get("OTEL_SERVICE_NAME") or "llmrelay"
        self.provider = TracerProvider(resource=Resource.create({"service.name": service}))
        exporter = OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter()
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("llmrelay")
        self.propagator = TraceContextTextMapPropagator()

    def start(self, call: Call) -> None:
        """The call's span, made current so that upstream and store spans become its children.
        Its parent is the caller's `traceparent`, or none: a WebSocket's calls do not nest."""
        carrier = call.meta.get("trace")
        parent = self.propagator.extract(carrier) if carrier else otel_context.Context()
        model = str(call.params.get("model"))
        provider = call.deployment.provider.name
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": PROVIDER_NAMES.get(provider, provider),
            "gen_ai.request.model": model,
        }
        for param, name in _REQUEST_PARAMS:
            if (value := call.params.get(param)) is not None:
                attributes[name] = value
        span = self.tracer.start_span(f"chat {model}", parent, SpanKind.SERVER, attributes)
        call.meta["span"] = span
        otel_context.attach(set_span_in_context(span, parent))  # this task's context: ends with it

    def end(self, call: Call, record: Record) -> None:
        span = call.meta.pop("span", None)
        if span is None:
            return
        span.set_attributes({
            "gen_ai.response.id": record.response_id,
            "gen_ai.response.model": call.deployment.model,
            "gen_ai.usage.input_tokens": record.input_tokens,
            "gen_ai.usage.output_tokens": record.output_tokens,
            "llmrelay.deployment": record.deployment,
            "llmrelay.status": record.status,
            "llmrelay.cost_usd": record.cost,
            "llmrelay.stream": record.stream,
        })  # fmt: skip
        if record.request_id:
            span.set_attribute("llmrelay.request_id", record.request_id)
        if record.error_class is not None:
            span.set_attribute("error.type", record.error_class)
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    def traced_send(self, send: Send) -> Send:
        """`Http.send` with a client span around each upstream exchange (until its headers)."""
        tracer = self.tracer

        async def traced(req: Any, **kwargs: Any) -> Any:
            url = urlsplit(req.url)
            attributes = {
                "http.request.method": req.method,
                "server.address": url.hostname or "",
                "url.full": f"{url.scheme}://{url.netloc}{url.path}",  # no query: keys travel there
            }
            if url.port:
                attributes["server.port"] = url.port
            with tracer.start_as_current_span(req.method, kind=SpanKind.CLIENT, attributes=attributes) as span:
                resp = await send(req, **kwargs)
                span.set_attribute("http.response.status_code", resp.status)
                if resp.status >= 400:
                    span.set_attribute("error.type", str(resp.status))
                    span.set_status(Status(StatusCode.ERROR))
                return resp

        return traced

    def timed(self, name: str, op: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        """A store operation as a span (only inside a traced call: nothing for background work)."""
        tracer = self.tracer
        span_name = f"store.{name}"
        attributes = {"db.operation.name": name}
        get_current = otel_context.get_current

        async def traced(*args: Any, **kwargs: Any) -> Any:
            if not get_current_span(get_current()).get_span_context().is_valid:
                return await op(*args, **kwargs)
            with tracer.start_as_current_span(span_name, kind=SpanKind.INTERNAL, attributes=attributes):
                return await op(*args, **kwargs)

        return traced

    def shutdown(self) -> None:
        self.provider.shutdown()  # what the batch still holds is sent
