"""OpenTelemetry traces: one span per call with the GenAI semantic-convention attributes, a
child span for each upstream HTTP exchange and each store operation; an incoming
`traceparent` is continued. Spans leave over OTLP/HTTP from the SDK's batch processor thread.

Imported only when tracing is switched on (`otel` in the callbacks, or an OTLP endpoint in
the environment). The spans are not made through the SDK's tracer: a tracer span costs tens
of microseconds (locks, attribute checks, context objects), and its exporter's encoding about
a hundred more, where a call knows its whole span only at its end anyway. A span ends as a
tuple of what it holds (ids, times, the call's record), queued; the export thread writes it as
OTLP bytes (otlp.py), the attributes that repeat from call to call (model, provider, upstream
URL, status) encoded once and kept, and the SDK's exporter posts the batches. The call's
(trace id, span id) travels to its children in a context variable, as the SDK's current span
would.
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
from . import otlp
from .otlp import Batcher
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

# The span of the call this task serves, as opened: (trace id, span id, the caller's (trace id,
# span id) or None, start); the parent of its upstream and store spans
Opened = tuple[int, int, tuple[int, int] | None, int]
_current: ContextVar[Opened | None] = ContextVar("llmrelay_span", default=None)


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
        opened = (trace_id, _span_id(), parent, time_ns())
        call.meta["span"] = opened
        _current.set(opened)  # this task's context: its upstream and store calls are children

    def end(self, call: Call, record: Record) -> None:
        opened = call.meta.pop("span", None)
        if opened is None:
            return
        params = call.params
        asked = None
        for param, name in _REQUEST_PARAMS:
            if (value := params.get(param)) is not None:
                asked = [*(asked or ()), (name, value)]
        self.batcher.add((_call_span, opened, time_ns(), record, call.deployment.model, asked))

    # -- children ----------------------------------------------------------------------------

    def traced_send(self, send: Op) -> Op:
        """`Http.send` with a client span around each upstream exchange (until its headers)."""
        add = self.batcher.add

        async def traced(req: Any, **kwargs: Any) -> Any:
            parent = _current.get()
            if parent is None:
                return await send(req, **kwargs)
            start = time_ns()
            try:
                resp = await send(req, **kwargs)
            except BaseException as exc:
                add((_client_span, parent, req.method, req.url, start, time_ns(), None, type(exc).__name__))
                raise
            add((_client_span, parent, req.method, req.url, start, time_ns(), resp.status, None))
            return resp

        return traced

    def timed(self, name: str, op: Op) -> Op:
        """A store operation as a span, inside a traced call (not for work outside any call)."""
        add = self.batcher.add
        fixed = _store_operation(name)

        async def traced(*args: Any, **kwargs: Any) -> Any:
            parent = _current.get()
            if parent is None:
                return await op(*args, **kwargs)
            start = time_ns()
            try:
                result = await op(*args, **kwargs)
            except BaseException:
                add((_store_span, parent, fixed, start, time_ns(), True))
                raise
            add((_store_span, parent, fixed, start, time_ns(), False))
            return result

        return traced

    def shutdown(self) -> None:
        self.batcher.shutdown()  # what the batch still holds is sent


# -- the spans' encodings, run by the export thread ----------------------------------------------
# Each takes the tuple its span was queued as, (itself, *what it needs), and gives the Span
# message's bytes. The children's span ids are drawn here, where no call waits for them.

_blocks: dict[tuple[Any, ...], tuple[bytes, ...]] = {}  # a call's attributes that repeat, encoded
_SUCCESS_TAILS = (otlp.tail(b"", False, False), otlp.tail(b"", False, True))  # (a root, under a caller)
_ROOT, _CHILD, _TIMES, _M64 = otlp.ROOT, otlp.CHILD, otlp.TIMES, (1 << 64) - 1
_response_id = otlp.string_writer("gen_ai.response.id")
_input_tokens = otlp.count_writer("gen_ai.usage.input_tokens")
_output_tokens = otlp.count_writer("gen_ai.usage.output_tokens")
_cost = otlp.number_writer("llmrelay.cost_usd")
_request_id = otlp.string_writer("llmrelay.request_id")


def _call_span(span: tuple[Any, ...]) -> bytes:
    """The call's span: the attributes in the order they always had, those that repeat from call
    to call (model, provider, deployment, status) written once and kept. `span` is (this,
    `Opened`, end, record, response model, asked)."""
    _, (trace_id, span_id, parent, start), end, record, response_model, asked = span
    key = (record.provider, record.model, response_model, record.deployment, record.status, record.stream)
    blocks = _blocks.get(key) or _call_blocks(key, record, response_model)
    if parent is None:
        head = _ROOT.pack(0x0A10, trace_id >> 64, trace_id & _M64, 0x1208, span_id)
    else:
        head = _CHILD.pack(0x0A10, trace_id >> 64, trace_id & _M64, 0x1208, span_id, 0x2208, parent[1])
    parts = [
        head, blocks[0], _TIMES.pack(0x39, start, 0x41, end), blocks[1], _response_id(record.response_id), blocks[2],
        _input_tokens(record.input_tokens), _output_tokens(record.output_tokens), blocks[3], _cost(record.cost),
        blocks[4],
    ]  # fmt: skip
    if asked:
        parts += (otlp.attribute(name, value) for name, value in asked)
    if record.request_id:
        parts.append(_request_id(record.request_id))
    if record.error_class is None:
        parts.append(_SUCCESS_TAILS[parent is not None])
    else:
        parts.append(otlp.tail(otlp.attributes({"error.type": record.error_class}), True, parent is not None))
    return b"".join(parts)


def _call_blocks(key: tuple[Any, ...], record: Record, response_model: str) -> tuple[bytes, ...]:
    provider = record.provider
    blocks = (
        otlp.named(f"chat {record.model}", SERVER),
        otlp.attributes({
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": PROVIDER_NAMES.get(provider, provider),
            "gen_ai.request.model": record.model,
        }),
        otlp.attributes({"gen_ai.response.model": response_model}),
        otlp.attributes({"llmrelay.deployment": record.deployment, "llmrelay.status": record.status}),
        otlp.attributes({"llmrelay.stream": record.stream}),
    )  # fmt: skip
    if len(_blocks) < 1000:
        _blocks[key] = blocks
    return blocks


_exchanges: dict[tuple[Any, ...], tuple[bytes, bytes]] = {}  # an upstream exchange's name, kind and tail


def _client_span(span: tuple[Any, ...]) -> bytes:
    """An upstream exchange: its status, or the class of the exception that ended it. `span` is
    (this, the call's `Opened`, method, url, start, end, status, failure)."""
    _, (trace_id, parent_id, _, _), method, url, start, end, status, failure = span
    fixed = _exchanges.get((method, url, status, failure)) or _exchange(method, url, status, failure)
    ids = _CHILD.pack(0x0A10, trace_id >> 64, trace_id & _M64, 0x1208, _span_id(), 0x2208, parent_id)
    return b"".join((ids, fixed[0], _TIMES.pack(0x39, start, 0x41, end), fixed[1]))


def _exchange(method: str, url: str, status: int | None, failure: str | None) -> tuple[bytes, bytes]:
    found: dict[str, Any] = {"http.request.method": method, **_url_attributes(url)}
    if status is not None:
        found["http.response.status_code"] = status
        if status >= 400:
            found["error.type"] = str(status)
    else:
        found["error.type"] = failure
    error = status is None or status >= 400
    fixed = (otlp.named(method, CLIENT), otlp.tail(otlp.attributes(found), error, False))
    if len(_exchanges) < 1000:
        _exchanges[method, url, status, failure] = fixed
    return fixed


def _store_operation(name: str) -> tuple[bytes, tuple[bytes, bytes]]:
    """A store operation's span name and kind, and its tails: (succeeded, failed)."""
    attributes = otlp.attributes({"db.operation.name": name})
    return otlp.named(f"store.{name}", INTERNAL), (otlp.tail(attributes, False, False),
                                                    otlp.tail(attributes, True, False))  # fmt: skip


def _store_span(span: tuple[Any, ...]) -> bytes:
    """A store operation: `span` is (this, the call's `Opened`, `_store_operation(name)`, start,
    end, failed)."""
    _, (trace_id, parent_id, _, _), fixed, start, end, error = span
    ids = _CHILD.pack(0x0A10, trace_id >> 64, trace_id & _M64, 0x1208, _span_id(), 0x2208, parent_id)
    return b"".join((ids, fixed[0], _TIMES.pack(0x39, start, 0x41, end), fixed[1][error]))
