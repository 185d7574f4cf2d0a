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
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import requests
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode
from requests.utils import get_netrc_auth

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
    return _memo(_keys, 0x0A, key)


def _memo(cache: dict[str, bytes], tag: int, text: str) -> bytes:
    """`text` as the string field `tag`, encoded once while the cache has room."""
    encoded = cache.get(text)
    if encoded is None:
        encoded = _field(tag, text.encode())
        if len(cache) < CACHED:
            cache[text] = encoded
    return encoded


def span(
    trace_id: int, span_id: int, parent: tuple[int, bool] | None, name: str, kind: int,
    start: int, end: int, attributes: Any, error: bool,
) -> bytes:  # fmt: skip
    """One Span message. `parent` is (span id, remote); `kind` the API's SpanKind value."""
    encoded = _attributes(0x4A, attributes) if attributes else b""
    return frame(trace_id, span_id, parent, name_field(name), kind, start, end, encoded, error)


TIMES = struct.Struct("<BQBQ")  # start_time_unix_nano (7) and end_time_unix_nano (8), fixed64 each
_FLAGS = (b"\x85\x01\x00\x01\x00\x00", b"\x85\x01\x00\x03\x00\x00")  # Span.flags (16), fixed32
_KINDS = tuple(b"\x30" + bytes((k + 1,)) for k in range(5))  # the API's INTERNAL is 0, OTLP's 1
_names: dict[str, bytes] = {}


def name_field(name: str) -> bytes:
    """Span.name (5), encoded; span names are few (`chat {model}`, `POST`, `store.put`, ...)."""
    return _memo(_names, 0x2A, name)


def frame(
    trace_id: int, span_id: int, parent: tuple[int, bool] | None, name: bytes, kind: int,
    start: int, end: int, attributes: bytes, error: bool,
) -> bytes:  # fmt: skip
    """A Span message around its encoded name (`name_field`) and attributes (repeated field 9)."""
    parent_id, remote = (None, False) if parent is None else parent
    return b"".join((
        head(trace_id, span_id, parent_id), name, _KINDS[kind], times(start, end), tail(attributes, error, remote)
    ))  # fmt: skip


# A span in four pieces, in field order: `head` (ids), the name and kind (fixed for a kind of
# span), `times`, `tail` (attributes, status, flags; fixed for many spans). The encoders of the
# spans that repeat keep their fixed pieces.
_M64 = (1 << 64) - 1
ROOT = struct.Struct(">HQQHQ")  # trace_id (1), span_id (2): tags, lengths and the ids, big-endian
CHILD = struct.Struct(">HQQHQHQ")  # + parent_span_id (4)


def head(trace_id: int, span_id: int, parent_id: int | None) -> bytes:
    if parent_id is None:
        return ROOT.pack(0x0A10, trace_id >> 64, trace_id & _M64, 0x1208, span_id)
    return CHILD.pack(0x0A10, trace_id >> 64, trace_id & _M64, 0x1208, span_id, 0x2208, parent_id)


def named(name: str, kind: int) -> bytes:
    """Span.name (5) and Span.kind (6)."""
    return name_field(name) + _KINDS[kind]


def times(start: int, end: int) -> bytes:
    return TIMES.pack(0x39, start, 0x41, end)


def tail(attributes: bytes, error: bool, remote: bool) -> bytes:
    """The attributes, the status, and the flags: bit 8 says whether the parent is remote is
    known, bit 9 that it is (the trace flags left out, as the SDK does)."""
    return attributes + (_ERROR_STATUS if error else _UNSET_STATUS) + _FLAGS[remote]


def attribute(key: str, value: Any) -> bytes:
    """One attribute (Span.attributes, field 9), not cached: for values that differ span to span."""
    return _field(0x4A, _key(key) + _field(0x12, _value(value)))


# The attributes that differ from call to call (ids, token counts, cost), written with their
# lengths computed rather than through `_field` thrice, when every length fits in one byte.


def string_attribute(key: str, value: str) -> bytes:
    encoded = value.encode()
    key_field = _key(key)
    n = len(encoded)
    size = len(key_field) + n + 4  # + the AnyValue field's tag and length, the string's
    if size > 0x7F:
        return attribute(key, value)
    return b"\x4a" + bytes((size,)) + key_field + bytes((0x12, n + 2, 0x0A, n)) + encoded


def int_attribute(key: str, value: int) -> bytes:
    if type(value) is not int or value < 0:
        return float_attribute(key, value) if type(value) is float else attribute(key, value)
    number = bytes((value,)) if value < 0x80 else _varint(value)
    key_field = _key(key)
    size = len(key_field) + len(number) + 3
    if size > 0x7F:
        return attribute(key, value)
    return b"\x4a" + bytes((size,)) + key_field + bytes((0x12, len(number) + 1, 0x18)) + number


def float_attribute(key: str, value: float) -> bytes:
    key_field = _key(key)
    if type(value) is not float or len(key_field) > 0x70:
        return attribute(key, value)
    return b"\x4a" + bytes((len(key_field) + 11,)) + key_field + _DOUBLE.pack(0x12, 9, 0x21, value)


_DOUBLE = struct.Struct("<BBBd")
_F64 = struct.Struct("<d")
_BYTES = tuple(bytes((i,)) for i in range(0x80))

# Writers of one attribute whose key is known in advance, for the spans written for every call:
# everything before the value is kept, for each length the value can take with one-byte lengths;
# other values go through the functions above.


def string_writer(key: str) -> Callable[[str], bytes]:
    """A string attribute (an id): the bytes before the value kept for each value length."""
    key_field = _key(key)
    heads = tuple(b"\x4a" + bytes((len(key_field) + n + 4,)) + key_field + bytes((0x12, n + 2, 0x0A, n))
                  for n in range(0x7C - len(key_field)))  # fmt: skip
    longest = len(heads)

    def write(value: str) -> bytes:
        encoded = value.encode()
        if len(encoded) < longest:
            return heads[len(encoded)] + encoded
        return attribute(key, value)

    return write


def count_writer(key: str) -> Callable[[int], bytes]:
    """A count (tokens): the bytes before its varint kept for varints of 1, 2 and 3 bytes."""
    key_field = _key(key)
    k = len(key_field)
    if k > 0x78:
        return lambda value: int_attribute(key, value)
    one, two, three = (b"\x4a" + bytes((k + m + 3,)) + key_field + bytes((0x12, m + 1, 0x18)) for m in (1, 2, 3))
    small = tuple(one + b for b in _BYTES)  # counts below 128, whole

    def write(value: int) -> bytes:
        if type(value) is int and value >= 0:
            if value < 0x80:
                return small[value]
            if value < 0x4000:
                return two + bytes((value & 0x7F | 0x80, value >> 7))
            if value < 0x200000:
                return three + bytes((value & 0x7F | 0x80, value >> 7 & 0x7F | 0x80, value >> 14))
        return int_attribute(key, value)

    return write


def number_writer(key: str) -> Callable[[float], bytes]:
    """A float attribute (a cost)."""
    key_field = _key(key)
    if len(key_field) > 0x70:
        return lambda value: attribute(key, value)
    head = b"\x4a" + bytes((len(key_field) + 11,)) + key_field + b"\x12\x09\x21"

    def write(value: float) -> bytes:
        if type(value) is float:
            return head + _F64.pack(value)
        return attribute(key, value)

    return write


def attributes(items: Any) -> bytes:
    """Attributes (Span.attributes, field 9) whose string values repeat: cached like `span`'s."""
    return _attributes(0x4A, items)


def resource_head(resource: Any) -> bytes:
    """ResourceSpans.resource, encoded."""
    return _field(0x0A, _attributes(0x0A, resource.attributes))


def scope_head(scope: Any) -> bytes:
    """ScopeSpans.scope, encoded."""
    return _field(0x0A, _field(0x0A, scope.name.encode()) + _field(0x12, (scope.version or "").encode()))


def request(resource: bytes, scope: bytes, framed: Sequence[bytes]) -> bytes:
    """An ExportTraceServiceRequest of spans from one resource and scope, in one join: `framed`
    holds each Span message after its field's tag and length (`SPAN_FIELDS`)."""
    spans = sum(map(len, framed))
    scope_spans = len(scope) + spans
    scope_field = b"\x12" + _varint(scope_spans)
    body = len(resource) + len(scope_field) + scope_spans
    return b"".join((b"\x0a", _varint(body), resource, scope_field, scope, *framed))


# ScopeSpans.spans (2): each Span message after its tag and length, spans being a few hundred bytes
SPAN_FIELDS = tuple(b"\x12" + _varint(n) for n in range(2048))


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
    """Spans, encoded and posted in batches from a thread (the SDK's batch processor's settings:
    OTEL_BSP_SCHEDULE_DELAY ms, OTEL_BSP_MAX_EXPORT_BATCH_SIZE, OTEL_BSP_MAX_QUEUE_SIZE; spans
    beyond the queue are dropped and counted). A span is queued as it ended, a tuple of an
    encoding function and its arguments, so that the event loop pays for the tuple only; the
    thread writes the bytes. The SDK's OTLP exporter does the HTTP: endpoint, headers,
    compression, certificates, timeouts and retries as configured for it."""

    def __init__(self, exporter: OTLPSpanExporter, resource: Any, scope: Any) -> None:
        self.exporter = exporter
        _read_environment_once(exporter)
        self.head = (resource_head(resource), scope_head(scope))
        self.delay = _env_number("OTEL_BSP_SCHEDULE_DELAY", 5000) / 1000
        self.batch = int(_env_number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512))
        self.limit = int(_env_number("OTEL_BSP_MAX_QUEUE_SIZE", 2048))
        self.spans: deque[tuple[Any, ...]] = deque()  # appended by the loop, taken by the thread
        self.dropped = 0
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="llmrelay-otlp", daemon=True)
        self._thread.start()

    def add(self, pending: tuple[Any, ...]) -> None:
        """`pending` is (encode, *what it needs): `encode(pending)` gives the Span message's bytes."""
        spans = self.spans
        if len(spans) >= self.limit:
            self.dropped += 1
            if self.dropped in (1, 1000) or self.dropped % 100_000 == 0:
                log.warning("traces: export queue full, %d spans dropped", self.dropped)
            return
        spans.append(pending)
        if len(spans) == self.batch:
            self._wake.set()

    def _run(self) -> None:
        while not self._stopping:
            full = self._wake.wait(self.delay)
            self._wake.clear()
            self._flush(everything=not full)

    def _flush(self, everything: bool = True) -> None:
        """Woken by a full batch, full batches are sent and the rest waits for the next (each
        post costs the thread ~0.5 ms of CPU, whatever it holds); after the delay, everything,
        as the SDK's batch processor does."""
        spans = self.spans
        fields, longest = SPAN_FIELDS, len(SPAN_FIELDS)
        while len(spans) >= (1 if everything else self.batch):
            framed: list[bytes] = []
            try:
                for _ in range(min(self.batch, len(spans))):
                    pending = spans.popleft()
                    message = pending[0](pending)
                    n = len(message)
                    framed.append(fields[n] if n < longest else b"\x12" + _varint(n))
                    framed.append(message)
                self._post(request(*self.head, framed))
            except Exception:  # the thread must live on
                log.exception("traces: could not export %d spans", len(framed) // 2)

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


def _read_environment_once(exporter: OTLPSpanExporter) -> None:
    """The exporter's `requests` session reads the environment on every post (proxies, CA bundle,
    ~/.netrc): a quarter of a post's CPU. The endpoint does not change, so what the environment
    says for it is read now and set on the session, which then stops looking."""
    client = getattr(exporter, "_client", None)
    session = getattr(getattr(client, "_transport", None), "_session", None) or getattr(exporter, "_session", None)
    endpoint = getattr(exporter, "_endpoint", None)
    if not isinstance(session, requests.Session) or not session.trust_env or not isinstance(endpoint, str):
        return
    found = session.merge_environment_settings(endpoint, {}, None, None, None)  # as each post would
    session.proxies, session.verify, session.cert = found["proxies"], found["verify"], found["cert"]
    if not session.auth:
        session.auth = get_netrc_auth(endpoint)
    session.trust_env = False


def _env_number(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name) or default)
    except ValueError:
        return default
