"""llmrelay's OTLP span encoder writes what the SDK's own encoder writes."""

from __future__ import annotations

import random

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from llmrelay.telemetry.otlp import encode

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
