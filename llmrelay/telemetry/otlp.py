"""OTLP/HTTP span export with a small protobuf encoder of its own.

The OTLP exporter's encoder builds a protobuf message object per span, per attribute and per
value, about 100 microseconds of CPU for one span with a dozen attributes: more than the rest
of a proxied call. Here each span is written as `Span` message bytes when it ends (the wire
format of the few fields llmrelay's spans use; `encode` does the same for the SDK's spans and
is checked against the SDK's encoder), batched, and posted as an `ExportTraceServiceRequest`
by the SDK's OTLP exporter's HTTP client.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

log = logging.getLogger("llmrelay.telemetry")
_MASK64 = (1 << 64) - 1
_ERROR_STATUS = b"\x7a\x02\x18\x02"  # Span.status (15) = Status{code (3) = STATUS_CODE_ERROR}
_UNSET_STATUS = b"\x7a\x00"  # an empty Status, as the SDK's encoder writes it
_keys: dict[str, bytes] = {}  # an attribute key as its encoded KeyValue.key field
_pairs: dict[tuple[str, str], bytes] = {}  # a repeated (key, string) as its whole KeyValue
CACHED = 4096


def _varint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field; `tag` is (field number << 3) | 2."""
    return bytes((tag,)) + _varint(len(payload)) + payload


def _value(value: Any) -> bytes:
    """An AnyValue."""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + _varint(value & _MASK64)
    if isinstance(value, float):
        return b"\x21" + struct.pack("<d", value)
    if isinstance(value, bytes):
        return _field(0x3A, value)
    if isinstance(value, (list, tuple)):  # an ArrayValue (5) of AnyValues (1)
        return _field(0x2A, b"".join(_field(0x0A, _value(v)) for v in value))
    return _field(0x0A, str(value).encode())


def _attributes(tag: int, attributes: Any) -> bytes:
    """Repeated KeyValues. Model names, providers, statuses repeat from span to span: a string
    value's whole encoding is kept (CACHED at most); ids are not worth keeping but cost the same."""
    out = []
    for key, value in attributes.items():
        if type(value) is str:
            pair = _pairs.get((key, value))
            if pair is None:
                pair = _field(tag, _key(key) + _field(0x12, _field(0x0A, value.encode())))
                if len(_pairs) < CACHED and len(value) < 64:
                    _pairs[key, value] = pair
            out.append(pair)
        else:
            out.append(_field(tag, _key(key) + _field(0x12, _value(value))))
    return b"".join(out)


def _key(key: str) -> bytes:
    encoded = _keys.get(key)
    if encoded is None:
        encoded = _field(0x0A, key.encode())
        if len(_keys) < CACHED:
            _keys[key] = encoded
    return encoded


def span(
    trace_id: int, span_id: int, parent: tuple[int, bool] | None, name: str, kind: int,
    start: int, end: int, attributes: Any, error: bool,
) -> bytes:  # fmt: skip
    """One Span message. `parent` is (span id, remote); `kind` the API's SpanKind value."""
    flags = 0x100  # bit 8: whether the parent is remote is known (the trace flags left out, as the SDK does)
    parts = [b"\x0a\x10", trace_id.to_bytes(16, "big"), b"\x12\x08", span_id.to_bytes(8, "big")]
    if parent is not None:
        parts += (b"\x22\x08", parent[0].to_bytes(8, "big"))
        if parent[1]:
            flags |= 0x200
    parts += (
        _field(0x2A, name.encode()),
        b"\x30", _varint(kind + 1),  # the API's INTERNAL is 0, OTLP's 1
        b"\x39", struct.pack("<Q", start),
        b"\x41", struct.pack("<Q", end),
    )  # fmt: skip
    if attributes:
        parts.append(_attributes(0x4A, attributes))
    parts.append(_ERROR_STATUS if error else _UNSET_STATUS)
    parts += (b"\x85\x01", struct.pack("<I", flags))  # Span.flags (16), fixed32
    return b"".join(parts)


def resource_head(resource: Any) -> bytes:
    """ResourceSpans.resource, encoded."""
    return _field(0x0A, _attributes(0x0A, resource.attributes))


def scope_head(scope: Any) -> bytes:
    """ScopeSpans.scope, encoded."""
    return _field(0x0A, _field(0x0A, scope.name.encode()) + _field(0x12, (scope.version or "").encode()))


def request(resource: bytes, scope: bytes, spans: Sequence[bytes]) -> bytes:
    """An ExportTraceServiceRequest of spans (each a Span message) from one resource and scope."""
    scope_spans = _field(0x12, scope + b"".join(_field(0x12, s) for s in spans))
    return _field(0x0A, resource + scope_spans)


def _readable(s: ReadableSpan) -> bytes:
    ctx = s.context
    assert ctx is not None
    parent = None if s.parent is None else (s.parent.span_id, s.parent.is_remote)
    error = s.status.status_code is StatusCode.ERROR
    return span(ctx.trace_id, ctx.span_id, parent, s.name, s.kind.value, s.start_time or 0, s.end_time or 0,
                s.attributes, error)  # fmt: skip


def encode(spans: Sequence[ReadableSpan]) -> bytes:
    """The SDK's spans as an ExportTraceServiceRequest, grouped by resource, then by scope."""
    groups: dict[int, tuple[Any, dict[int, tuple[Any, list[bytes]]]]] = {}
    for s in spans:
        resource, scopes = groups.setdefault(id(s.resource), (s.resource, {}))
        scope = s.instrumentation_scope
        scopes.setdefault(id(scope), (scope, []))[1].append(_readable(s))
    out = []
    for resource, scopes in groups.values():
        body = [resource_head(resource)]
        for scope, encoded in scopes.values():
            head = b"" if scope is None else scope_head(scope)
            body.append(_field(0x12, head + b"".join(_field(0x12, e) for e in encoded)))
        out.append(_field(0x0A, b"".join(body)))
    return b"".join(out)


class Batcher:
    """Encoded spans, posted in batches from a thread (the SDK's batch processor's settings:
    OTEL_BSP_SCHEDULE_DELAY ms, OTEL_BSP_MAX_EXPORT_BATCH_SIZE, OTEL_BSP_MAX_QUEUE_SIZE; spans
    beyond the queue are dropped and counted). The SDK's OTLP exporter does the HTTP: endpoint,
    headers, compression, certificates, timeouts and retries as configured for it."""

    def __init__(self, exporter: OTLPSpanExporter, resource: Any, scope: Any) -> None:
        self.exporter = exporter
        self.head = (resource_head(resource), scope_head(scope))
        self.delay = _env_number("OTEL_BSP_SCHEDULE_DELAY", 5000) / 1000
        self.batch = int(_env_number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512))
        self.limit = int(_env_number("OTEL_BSP_MAX_QUEUE_SIZE", 2048))
        self.spans: list[bytes] = []
        self.dropped = 0
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="llmrelay-otlp", daemon=True)
        self._thread.start()

    def add(self, encoded: bytes) -> None:
        spans = self.spans
        if len(spans) >= self.limit:
            self.dropped += 1
            if self.dropped in (1, 1000) or self.dropped % 100_000 == 0:
                log.warning("traces: export queue full, %d spans dropped", self.dropped)
            return
        spans.append(encoded)
        if len(spans) == self.batch:
            self._wake.set()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.delay)
            self._wake.clear()
            self._flush()

    def _flush(self) -> None:
        # Only this thread removes spans, and only from the front; appends go to the end.
        while self.spans:
            batch = self.spans[: self.batch]
            del self.spans[: len(batch)]
            try:
                self._post(request(*self.head, batch))
            except Exception:  # the thread must live on
                log.exception("traces: could not export %d spans", len(batch))

    def _post(self, data: bytes) -> None:
        client = getattr(self.exporter, "_client", None)
        if client is not None and hasattr(client, "export"):  # opentelemetry-exporter-otlp-proto-http 1.4x
            ok = client.export(data).success
        else:  # earlier versions
            ok = self.exporter._export(data).ok  # type: ignore[attr-defined]
        if not ok:
            log.warning("traces: the OTLP endpoint did not take %d bytes of spans", len(data))

    def shutdown(self, timeout: float = 5.0) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        self._flush()
        self.exporter.shutdown()


def _env_number(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name) or default)
    except ValueError:
        return default
