"""OpenTelemetry traces: one span per call with the GenAI semantic-convention attributes, a
child span for each upstream HTTP exchange and each store operation; an incoming
`traceparent` is continued. Spans leave over OTLP/HTTP from the SDK's batch processor thread.

Imported only when tracing is switched on (`otel` in the callbacks, or an OTLP endpoint in
the environment). The spans are not made through the SDK's tracer: a tracer span costs tens
of microseconds (locks, attribute checks, context objects), and its exporter's encoding about
a hundred more, where a call knows its whole span only at its end anyway. Each span is written
once, finished, as OTLP bytes (otlp.py) and batched; the SDK's exporter posts the batches. The
call's (trace id, span id) travels to its children in a context variable, as the SDK's current
span would.
"""

from __future__ import annotations

import os
import random
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from time import time_ns
from typing import Any
from urllib.parse import urlsplit

try:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import get_current_span
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "OpenTelemetry traces need opentelemetry-sdk and its OTLP exporter: pip install 'llmrelay[otel]'"
    ) from exc

from ..providers.base import Call
from .otlp import Batcher, span
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
INTERNAL, SERVER, CLIENT = 0, 1, 2  # the API's SpanKind values
Op = Callable[..., Awaitable[Any]]

# (trace id, span id) of the call this task serves: the parent of its upstream and store spans
_current: ContextVar[tuple[int, int] | None] = ContextVar("llmrelay_span", default=None)


def _span_id() -> int:
    return random.getrandbits(64) or 1


_urls: dict[str, dict[str, Any]] = {}  # a deployment's URLs repeat: each parsed once


def _url_attributes(url: str) -> dict[str, Any]:
    found = _urls.get(url)
    if found is None:
        parts = urlsplit(url)
        found = {
            "server.address": parts.hostname or "",
            "url.full": f"{parts.scheme}://{parts.netloc}{parts.path}",  # no query: keys travel there
        }
        if parts.port:
            found["server.port"] = parts.port
        if len(_urls) < 1000:
            _urls[url] = found
    return found


class Tracing:
    def __init__(self, endpoint: str | None = None) -> None:
        service = os.environ.get("OTEL_SERVICE_NAME") or "llmrelay"
        exporter = OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter()
        resource = Resource.create({"service.name": service})
        self.batcher = Batcher(exporter, resource, InstrumentationScope("llmrelay"))
        self.propagator = TraceContextTextMapPropagator()

    # -- the call's span ---------------------------------------------------------------------

    def start(self, call: Call) -> None:
        """Open the call's span. Its parent is the caller's `traceparent` (a caller that did not
        sample its trace gets none from here either), or none: a WebSocket's calls do not nest."""
        parent = None
        if carrier := call.meta.get("trace"):
            ctx = get_current_span(self.propagator.extract(carrier)).get_span_context()
            if ctx.is_valid and not ctx.trace_flags.sampled:
                _current.set(None)
                return
            if ctx.is_valid:
                parent = (ctx.trace_id, ctx.span_id)
        trace_id = parent[0] if parent is not None else random.getrandbits(128) or 1
        ids = (trace_id, _span_id())
        call.meta["span"] = (ids, parent, time_ns())
        _current.set(ids)  # this task's context: its upstream and store calls are children

    def end(self, call: Call, record: Record) -> None:
        opened = call.meta.pop("span", None)
        if opened is None:
            return
        (trace_id, span_id), parent, start = opened
        provider = record.provider
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": PROVIDER_NAMES.get(provider, provider),
            "gen_ai.request.model": record.model,
            "gen_ai.response.id": record.response_id,
            "gen_ai.response.model": call.deployment.model,
            "gen_ai.usage.input_tokens": record.input_tokens,
            "gen_ai.usage.output_tokens": record.output_tokens,
            "llmrelay.deployment": record.deployment,
            "llmrelay.status": record.status,
            "llmrelay.cost_usd": record.cost,
            "llmrelay.stream": record.stream,
        }
        params = call.params
        for param, name in _REQUEST_PARAMS:
            if (value := params.get(param)) is not None:
                attributes[name] = value
        if record.request_id:
            attributes["llmrelay.request_id"] = record.request_id
        error = record.error_class is not None
        if error:
            attributes["error.type"] = record.error_class
        remote = None if parent is None else (parent[1], True)
        self.batcher.add(span(trace_id, span_id, remote, f"chat {record.model}", SERVER, start, time_ns(),
                              attributes, error))  # fmt: skip

    # -- children ----------------------------------------------------------------------------

    def traced_send(self, send: Op) -> Op:
        """`Http.send` with a client span around each upstream exchange (until its headers)."""
        add = self.batcher.add

        async def traced(req: Any, **kwargs: Any) -> Any:
            parent = _current.get()
            if parent is None:
                return await send(req, **kwargs)
            start = time_ns()
            attributes = {"http.request.method": req.method, **_url_attributes(req.url)}
            error = True
            try:
                resp = await send(req, **kwargs)
                attributes["http.response.status_code"] = resp.status
                if resp.status >= 400:
                    attributes["error.type"] = str(resp.status)
                else:
                    error = False
                return resp
            except BaseException as exc:
                attributes["error.type"] = type(exc).__name__
                raise
            finally:
                add(span(parent[0], _span_id(), (parent[1], False), req.method, CLIENT, start, time_ns(),
                         attributes, error))  # fmt: skip

        return traced

    def timed(self, name: str, op: Op) -> Op:
        """A store operation as a span, inside a traced call (not for work outside any call)."""
        add = self.batcher.add
        span_name = f"store.{name}"
        attributes = {"db.operation.name": name}

        async def traced(*args: Any, **kwargs: Any) -> Any:
            parent = _current.get()
            if parent is None:
                return await op(*args, **kwargs)
            start = time_ns()
            error = True
            try:
                result = await op(*args, **kwargs)
                error = False
                return result
            finally:
                add(span(parent[0], _span_id(), (parent[1], False), span_name, INTERNAL, start, time_ns(),
                         attributes, error))  # fmt: skip

        return traced

    def shutdown(self) -> None:
        self.batcher.shutdown()  # what the batch still holds is sent
