"""The OTLP batcher: what it posts when, and the exporter's session it posts through."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from llmrelay.telemetry import otlp
from llmrelay.telemetry.otlp import Batcher


class Posted(Batcher):
    """A batcher whose posts are kept, as the number of spans each held."""

    def __init__(self, exporter: Any) -> None:
        self.posted: list[int] = []
        super().__init__(exporter, Resource.create({"service.name": "t"}), InstrumentationScope("llmrelay"))

    def _post(self, data: bytes) -> None:
        decoded = ExportTraceServiceRequest()
        decoded.ParseFromString(data)
        self.posted.append(len(decoded.resource_spans[0].scope_spans[0].spans))


def _span(pending: tuple[Any, ...]) -> bytes:
    return otlp.span(1, pending[1], None, "s", 0, 1, 2, {}, False)


def test_a_full_queue_posts_full_batches_and_the_delay_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "600000")  # the thread never wakes by itself here
    batcher = Posted(OTLPSpanExporter(endpoint="http://127.0.0.1:9/v1/traces"))
    batcher.spans.extend((_span, i + 1) for i in range(10))  # queued without waking the thread
    batcher._flush(everything=False)
    assert batcher.posted == [4, 4] and len(batcher.spans) == 2
    batcher._flush()
    assert batcher.posted == [4, 4, 2] and not batcher.spans
    batcher.spans.append((_span, 11))
    batcher.shutdown()  # what is left is posted
    assert batcher.posted == [4, 4, 2, 1]


def test_the_environment_is_read_once_for_the_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ca.pem")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    exporter = OTLPSpanExporter(endpoint="http://collector.example:4318/v1/traces")
    session = exporter._client._transport._session  # type: ignore[attr-defined]
    expected = session.merge_environment_settings("http://collector.example:4318/v1/traces", {}, None, None, None)
    otlp._read_environment_once(exporter)
    assert not session.trust_env
    assert session.proxies["http"] == "http://proxy.example:3128" and session.verify == "/etc/ca.pem"
    assert session.merge_environment_settings(exporter._endpoint, {}, None, None, None) == expected
    otlp._read_environment_once(exporter)  # a session that stopped looking is left as it is
    assert session.proxies["http"] == "http://proxy.example:3128"
