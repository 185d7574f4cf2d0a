"""Telemetry's pure pieces: which sinks a config switches on, the record a call leaves, the
request id middleware, and nothing at all when nothing is switched on."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from llmrelay.config import parse_config
from llmrelay.gateway.stage import Outcome, outcome_of
from llmrelay.providers.base import Call
from llmrelay.providers.registry import make_deployment
from llmrelay.proxy.request_id import REQUEST_ID, TRACE, RequestId
from llmrelay.telemetry import build_telemetry, telemetry_settings
from llmrelay.telemetry.record import record_of

MODEL = {"model_name": "m", "litellm_params": {"model": "mock/m"}}


def settings(litellm: dict[str, Any], env: dict[str, str] | None = None) -> Any:
    return telemetry_settings(parse_config({"model_list": [MODEL], "litellm_settings": litellm}), env or {})


def test_nothing_named_switches_nothing_on() -> None:
    config = parse_config({"model_list": [MODEL]})
    assert not telemetry_settings(config, {}).on
    assert build_telemetry(config) is None or telemetry_settings(config).on  # unless the environment names OTLP


def test_callback_lists_switch_targets_on() -> None:
    s = settings({
        "callbacks": ["prometheus", "https://a.example/hook"],
        "success_callback": ["otel", "https://b.example/hook"],
        "failure_callback": ["https://b.example/hook", "https://c.example/hook", "langfuse"],
    })  # fmt: skip
    assert s.prometheus and s.otel and not s.json_logs
    targets = {t.url: (t.success, t.failure) for t in s.webhooks}
    assert targets == {
        "https://a.example/hook": (True, True),
        "https://b.example/hook": (True, True),
        "https://c.example/hook": (False, True),
    }


def test_generic_api_reads_its_endpoint_and_headers_from_the_environment() -> None:
    env = {"GENERIC_LOGGER_ENDPOINT": "http://logs.example/in", "GENERIC_LOGGER_HEADERS": "x-api-key=s1, team=a"}
    (target,) = settings({"success_callback": ["generic_api"]}, env).webhooks
    assert target.url == "http://logs.example/in" and target.headers == {"x-api-key": "s1", "team": "a"}
    assert target.success and not target.failure
    with pytest.raises(ValueError, match="generic_api needs GENERIC_LOGGER_ENDPOINT"):
        settings({"callbacks": ["generic_api"]})


def test_the_environment_switches_traces_and_json_logs_on() -> None:
    assert settings({}, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}).otel
    assert settings({}, {"OTEL_ENDPOINT": "http://collector:4318/v1/traces"}).otel_endpoint
    assert settings({}, {"LLMRELAY_JSON_LOGS": "1"}).json_logs
    assert settings({"json_logs": True}).json_logs


def test_callbacks_that_need_a_third_party_service_are_skipped_and_named() -> None:
    config = parse_config({"model_list": [MODEL], "litellm_settings": {"callbacks": ["datadog", "prometheus"]}})
    assert config.skipped == ["litellm_settings.callbacks[datadog]"]


def _call(**meta: Any) -> Call:
    dep = make_deployment("anthropic/claude-sonnet-4-5", api_key="k", model_name="claude")
    meta.setdefault("started", 0.0)
    return Call(id="resp_1", params={"model": "claude", "stream": True}, deployment=dep, input_items=[],
                created_at=0, new_id=str, meta=meta)  # fmt: skip


def test_the_record_gathers_what_the_call_knows() -> None:
    call = _call(request_id="r-1", first_token=0.25)
    usage = {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": 7,
             "output_tokens_details": {"reasoning_tokens": 3}}  # fmt: skip
    record = record_of(call, Outcome("completed", usage, 1.5, cost=0.01))
    assert (record.request_id, record.model, record.provider, record.status) == (
        "r-1",
        "claude",
        "anthropic",
        "completed",
    )
    assert (record.input_tokens, record.output_tokens, record.reasoning_tokens, record.cached_tokens) == (10, 7, 3, 4)
    assert record.ttft == 0.25 and record.latency == 1.5 and record.cost == 0.01 and record.ok
    assert record.error_class is None and record.stream and not record.background


def test_a_failure_is_classed_by_its_exception_or_its_response_error_code() -> None:
    import openai

    from llmrelay import errors

    call = _call()
    try:
        raise errors.bad_request("no")
    except openai.APIError:
        assert record_of(call, Outcome("error", None, 0.1)).error_class == "BadRequestError"
    failed = {"status": "failed", "error": {"code": "server_error", "message": "x"}}
    outcome = outcome_of(call, failed)
    assert outcome.error == "server_error" and record_of(call, outcome).error_class == "server_error"
    assert record_of(call, Outcome("cancelled", None, 0.1)).error_class is None


def _run_middleware(headers: list[tuple[bytes, bytes]], *, traces: bool = False) -> tuple[dict[str, Any], list]:
    seen: dict[str, Any] = {}
    sent: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.update(scope)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "headers": headers}
    asyncio.run(RequestId(app, traces=traces)(scope, None, send))
    return seen, sent


@pytest.mark.parametrize(
    ("given", "echoed"),
    [(b"abc-123", True), (b"req:1/2=3+4@x.y_z", True), (b"a b", False), (b"x" * 129, False), (b"\xff", False)],
)
def test_a_request_id_is_echoed_when_safe_and_generated_otherwise(given: bytes, echoed: bool) -> None:
    seen, sent = _run_middleware([(b"x-request-id", given)])
    header = dict(sent[0]["headers"])[b"x-request-id"]
    assert (header == given) is echoed
    assert seen[REQUEST_ID] == header.decode() and len(header) <= 128
    assert dict(sent[0]["headers"])[b"content-type"] == b"text/plain"


def test_trace_headers_are_kept_only_when_traces_are_on() -> None:
    traceparent = (b"traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    seen, _ = _run_middleware([traceparent])
    assert TRACE not in seen
    seen, _ = _run_middleware([traceparent], traces=True)
    assert seen[TRACE] == {"traceparent": traceparent[1].decode()}
