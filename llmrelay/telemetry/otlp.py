"""OTLP/HTTP span export with a small protobuf encoder of its own.

The OTLP exporter's encoder builds a protobuf message object per span, per attribute and per
value, about 100 microseconds of CPU for one span with a dozen attributes: more than the rest
of a proxied call. This writes the same `ExportTraceServiceRequest` bytes directly (the wire
format of the few fields llmrelay's spans use), and leaves endpoint, headers, compression,
timeouts and retries to the SDK exporter it extends. Where that exporter's internals differ
(another version), its own export runs instead.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import StatusCode

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


def _span(span: ReadableSpan) -> bytes:
    ctx = span.context
    assert ctx is not None
    parts = [
        b"\x0a\x10", ctx.trace_id.to_bytes(16, "big"),
        b"\x12\x08", ctx.span_id.to_bytes(8, "big"),
    ]  # fmt: skip
    flags = 0x100  # bit 8: whether the parent is remote is known (the trace flags left out, as the SDK does)
    if span.parent is not None:
        parts += (b"\x22\x08", span.parent.span_id.to_bytes(8, "big"))
        if span.parent.is_remote:
            flags |= 0x200
    parts += (
        _field(0x2A, span.name.encode()),
        b"\x30", _varint(span.kind.value + 1),  # the API's INTERNAL is 0, OTLP's 1
        b"\x39", struct.pack("<Q", span.start_time or 0),
        b"\x41", struct.pack("<Q", span.end_time or 0),
    )  # fmt: skip
    if span.attributes:
        parts.append(_attributes(0x4A, span.attributes))
    parts.append(_ERROR_STATUS if span.status.status_code is StatusCode.ERROR else _UNSET_STATUS)
    parts += (b"\x85\x01", struct.pack("<I", flags))  # Span.flags (16), fixed32
    return b"".join(parts)


def encode(spans: Sequence[ReadableSpan]) -> bytes:
    """An ExportTraceServiceRequest: the spans grouped by resource, then by scope."""
    groups: dict[int, tuple[Any, dict[int, tuple[Any, list[bytes]]]]] = {}
    for span in spans:
        resource, scopes = groups.setdefault(id(span.resource), (span.resource, {}))
        scope = span.instrumentation_scope
        scopes.setdefault(id(scope), (scope, []))[1].append(_field(0x12, _span(span)))
    out = []
    for resource, scopes in groups.values():
        body = [_field(0x0A, _attributes(0x0A, resource.attributes))]
        for scope, encoded in scopes.values():
            head = b""
            if scope is not None:
                head = _field(0x0A, _field(0x0A, scope.name.encode()) + _field(0x12, (scope.version or "").encode()))
            body.append(_field(0x12, head + b"".join(encoded)))
        out.append(_field(0x0A, b"".join(body)))
    return b"".join(out)


class SpanExporter(OTLPSpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        client = getattr(self, "_client", None)
        if client is None or getattr(self, "_shutdown", True) or not hasattr(client, "export"):
            return super().export(spans)
        result = client.export(encode(spans))
        return SpanExportResult.SUCCESS if getattr(result, "success", False) else SpanExportResult.FAILURE
