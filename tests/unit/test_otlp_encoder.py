"""llmrelay's OTLP span encoder writes what the SDK's own encoder writes, and the spans the
traces queue are encoded as that generic encoder would write them."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from llmrelay.telemetry import tracing
from llmrelay.telemetry.otlp import SPAN_FIELDS, _readable, _varint, encode, request, resource_head, scope_head, span
from llmrelay.telemetry.record import Record
from llmrelay.telemetry.tracing import CLIENT, INTERNAL, SERVER, _call_span, _client_span, _store_operation, _store_span

ATTRIBUTES = {
    "gen_ai.operation.name": "chat", "gen_ai.request.model": "claude", "gen_ai.response.id": "resp_" + "a" * 80,
    "gen_ai.usage.input_tokens": 10, "negative": -5, "large": 2**40, "llmrelay.cost_usd": 0.0125,
    "llmrelay.stream": True, "false": False, "list": ["a", "b"], "unicode": "modèle",
}  # fmt: skip


def test_the_encoding_decodes_to_what_the_sdk_encodes() -> None:
    rng = random.Random(7)
    resources = [Resource.create({"service.name": "a"}), Resource.create({"service.name": "b"})]
    scope = InstrumentationScope("llmrelay", "1.0")
    spans = []
    for i in range(40):
        ctx = SpanContext(rng.getrandbits(128), rng.getrandbits(64), False, TraceFlags(TraceFlags.SAMPLED))
        parent = [None, SpanContext(ctx.trace_id, rng.getrandbits(64), i % 4 == 1, TraceFlags(1))][i % 2]
        spans.append(ReadableSpan(
            f"span {i}", ctx, parent, resources[i % 2], ATTRIBUTES if i % 5 else {"only": i},
            kind=list(SpanKind)[i % len(SpanKind)], status=Status(StatusCode.ERROR if i % 3 == 0 else StatusCode.UNSET),
            start_time=1_700_000_000_000_000_000 + i, end_time=1_700_000_000_000_999_999 + i,
            instrumentation_scope=scope,
        ))  # fmt: skip
    decoded = ExportTraceServiceRequest()
    decoded.ParseFromString(encode(spans))
    assert decoded == encode_spans(spans)
    assert encode([]) == b""


def _record(**changes: Any) -> Record:
    base = Record(
        request_id="req-1", response_id="resp_" + "b" * 40, model="claude", deployment="claude-1",
        provider="anthropic", key_alias=None, team=None, status="completed", error_class=None, latency=0.5,
        ttft=None, input_tokens=120, output_tokens=40, reasoning_tokens=0, cached_tokens=0, cost=0.0012,
        stream=True, background=False, start_time=0.0,
    )  # fmt: skip
    return replace(base, **changes)


SEMCONV_NAMES = {"anthropic": "anthropic", "vertex_ai": "gcp.vertex_ai"}


@pytest.mark.parametrize(
    ("record", "asked"),
    [
        (_record(), None),
        (_record(request_id=None, cost=0, stream=False), [("gen_ai.request.temperature", 0.2)]),
        (_record(status="error", error_class="APIConnectionError", provider="vertex_ai", input_tokens=70_000,
                 output_tokens=0, cost=2.5, request_id="r" * 200),
         [("gen_ai.request.max_tokens", 100), ("gen_ai.request.top_p", 1)]),
        # counts of every varint length the writers keep and beyond, ids about the longest they keep
        (_record(input_tokens=300, output_tokens=3_000_000, response_id="resp_" + "c" * 99, request_id="r" * 95),
         None),
        (_record(input_tokens=16_383, output_tokens=2**21 - 1, response_id="resp_" + "d" * 98, request_id="é" * 48),
         None),
        (_record(input_tokens=127, output_tokens=128, response_id="", cost=1), None),
    ],
)  # fmt: skip
def test_a_calls_span_is_the_generic_encoding_of_its_attributes(
    record: Record, asked: list[tuple[str, Any]] | None
) -> None:
    for remote in (None, (7, 9)):  # a root span, and one continuing a caller's traceparent
        opened = (1234, 5678, remote, 1_700_000_000_000_000_000)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": SEMCONV_NAMES[record.provider],
            "gen_ai.request.model": record.model, "gen_ai.response.id": record.response_id,
            "gen_ai.response.model": "claude-sonnet-4-5", "gen_ai.usage.input_tokens": record.input_tokens,
            "gen_ai.usage.output_tokens": record.output_tokens, "llmrelay.deployment": record.deployment,
            "llmrelay.status": record.status, "llmrelay.cost_usd": record.cost, "llmrelay.stream": record.stream,
            **dict(asked or ()),
        }  # fmt: skip
        if record.request_id:
            attributes["llmrelay.request_id"] = record.request_id
        if record.error_class:
            attributes["error.type"] = record.error_class
        parent = None if remote is None else (remote[1], True)
        expected = span(1234, 5678, parent, "chat claude", SERVER, opened[3], opened[3] + 9, attributes,
                        record.error_class is not None)  # fmt: skip
        for _ in range(2):  # written, then from what was kept
            assert _call_span((_call_span, opened, opened[3] + 9, record, "claude-sonnet-4-5", asked)) == expected


@pytest.mark.parametrize(("status", "failure"), [(200, None), (529, None), (None, "ConnectTimeout")])
def test_an_upstream_exchange_and_a_store_operation_are_the_generic_encodings(
    status: int | None, failure: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracing, "_span_id", lambda: 4)  # a child's id is drawn as it is written
    url = "https://api.example.com:8443/v1/messages?key=secret"
    trace_id = 2**127 + 3  # the high half set too
    attributes: dict[str, Any] = {
        "http.request.method": "POST", "server.address": "api.example.com",
        "url.full": "https://api.example.com:8443/v1/messages", "server.port": 8443,
    }  # fmt: skip
    if status is not None:
        attributes["http.response.status_code"] = status
    if status is None or status >= 400:
        attributes["error.type"] = failure or str(status)
    error = "error.type" in attributes
    expected = span(trace_id, 4, (5, False), "POST", CLIENT, 10, 20, attributes, error)
    for _ in range(2):
        assert _client_span((_client_span, (trace_id, 5, None, 0), "POST", url, 10, 20, status, failure)) == expected
    store = _store_span((_store_span, (3, 5, None, 0), _store_operation("put"), 10, 20, error))
    assert store == span(3, 4, (5, False), "store.put", INTERNAL, 10, 20, {"db.operation.name": "put"}, error)


def test_a_request_holds_the_framed_spans_as_the_generic_encoding_does() -> None:
    resource, scope = Resource.create({"service.name": "a"}), InstrumentationScope("llmrelay")
    ctx = SpanContext(2**100 + 1, 2, False, TraceFlags(TraceFlags.SAMPLED))
    spans = [
        ReadableSpan(f"s{i}", ctx, None, resource, {"a": "x" * (i * 40)}, start_time=1, end_time=2,
                     instrumentation_scope=scope)
        for i in range(60)  # messages of one- and two-byte lengths, and past SPAN_FIELDS
    ]  # fmt: skip
    messages = [_readable(s) for s in spans]
    assert max(map(len, messages)) >= len(SPAN_FIELDS) > min(map(len, messages))
    framed = []
    for m in messages:
        framed += (SPAN_FIELDS[len(m)] if len(m) < len(SPAN_FIELDS) else b"\x12" + _varint(len(m)), m)
    assert request(resource_head(resource), scope_head(scope), framed) == encode(spans)
