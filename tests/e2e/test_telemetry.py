"""Telemetry through real proxy processes, the openai SDK as client: Prometheus counters moved
by a known mix of calls across two workers, an OTLP trace tree for a translated stream, a
webhook that gets every call of a burst exactly once, JSON request logs, x-request-id."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
from openai import OpenAI

from tests.e2e.gateway_helpers import MASTER, ok
from tests.e2e.proxy_process import ProxyProcess, start_proxy, write_config
from tests.e2e.telemetry_receivers import OTLP_REPLY, posted_json, receiving, scrape, spans, total
from tests.e2e.waits import finished, wait_for
from tests.fakes.process import FakeServer, free_port

CLAUDE = "anthropic/claude-sonnet-4-5"


def _closed_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there: the connection is refused


def _model_list(anthropic_fake: FakeServer, openai_fake: FakeServer) -> list[dict[str, object]]:
    down = _closed_url()
    return [
        {"model_name": "demo", "litellm_params": {"model": "mock/demo"}},
        {"model_name": "claude", "litellm_params": {"model": CLAUDE, "api_base": anthropic_fake.url, "api_key": "k"}},
        {"model_name": "down", "litellm_params": {"model": "openai/gpt-4o", "api_base": down, "api_key": "k",
                                                  "max_retries": 0}, "model_info": {"id": "down-1"}},
        {"model_name": "flaky", "litellm_params": {"model": "openai/gpt-4o", "api_base": down, "api_key": "k",
                                                   "order": 1, "max_retries": 1}, "model_info": {"id": "flaky-broken"}},
        {"model_name": "flaky", "litellm_params": {"model": "openai/gpt-4o", "api_base": openai_fake.url,
                                                   "api_key": "k", "order": 2}, "model_info": {"id": "flaky-good"}},
    ]  # fmt: skip


# -- Prometheus ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def metrics_proxy(
    anthropic_fake: FakeServer, openai_fake: FakeServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    tmp = tmp_path_factory.mktemp("metrics")
    config = {
        "model_list": _model_list(anthropic_fake, openai_fake),
        "general_settings": {"master_key": MASTER},
        "litellm_settings": {"callbacks": ["prometheus"]},
        "router_settings": {"allowed_fails": 0},
    }
    path = write_config(config, tmp)
    with start_proxy("--config", str(path), "--workers", "2", store=str(tmp / "store.db")) as proxy:
        yield proxy


def test_counters_move_by_a_known_mix_across_two_workers(metrics_proxy: ProxyProcess) -> None:
    proxy = metrics_proxy
    team = ok(proxy, "/team/new", {"team_alias": "research"})["team_id"]
    key = ok(proxy, "/key/generate", {"key_alias": "metrics-key", "team_id": team})["key"]
    client = OpenAI(base_url=proxy.url, api_key=key, max_retries=0)
    who = {"key_alias": "metrics-key", "team": "research"}
    before = scrape(proxy.root)

    for _ in range(2):
        assert client.responses.create(model="demo", input="plain").status == "completed"
    with client.responses.stream(model="claude", input="translated stream") as stream:  # Anthropic, translated
        for _ in stream:
            pass
        streamed = stream.get_final_response()
    with pytest.raises(openai.InternalServerError):  # 502: the upstream cannot be reached
        client.responses.create(model="down", input="fails")
    assert client.responses.create(model="flaky", input="retried").status == "completed"
    job = client.responses.create(model="demo", input="in the background", background=True)
    assert finished(lambda: client.responses.retrieve(job.id)).status == "completed"

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    # Each worker writes its counts within FLUSH_INTERVAL of a call's end (the job's at its terminal
    # event, which may land just after the client sees it), the requests counter last. Once all
    # six calls show there, one more scrape reads everything they left (whatever the file order).
    calls = total(before, "llmrelay_requests_total") + 6
    wait_for(lambda: scrape(proxy.root), lambda s: total(s, "llmrelay_requests_total") >= calls)
    after = scrape(proxy.root)
    assert moved("llmrelay_requests_total", model="demo", status="completed", **who) == 3
    assert moved("llmrelay_requests_total", model="claude", status="completed", provider="anthropic", **who) == 1
    assert moved("llmrelay_requests_total", model="down", status="error", deployment="down-1", **who) == 1
    assert moved("llmrelay_requests_total", model="flaky", status="completed", deployment="flaky-good") == 1
    assert moved("llmrelay_requests_total") == 6
    assert moved("llmrelay_errors_total", model="down", error_class="APIConnectionError") == 1
    assert moved("llmrelay_errors_total") == 1
    assert moved("llmrelay_router_retries_total", model="flaky", deployment="flaky-good") == 1
    assert moved("llmrelay_router_cooldowns_total", deployment="flaky-broken") == 1
    assert moved("llmrelay_router_cooldowns_total", deployment="down-1") == 1
    assert moved("llmrelay_background_jobs_total", status="completed") == 1
    assert moved("llmrelay_background_jobs_total") == 1
    assert streamed.usage is not None
    assert moved("llmrelay_tokens_total", model="claude", type="input") == streamed.usage.input_tokens
    assert moved("llmrelay_tokens_total", model="claude", type="output") == streamed.usage.output_tokens
    assert moved("llmrelay_time_to_first_token_seconds_count", model="claude") == 1
    assert moved("llmrelay_time_to_first_token_seconds_count", model="demo") == 1  # the job runs as a stream
    assert moved("llmrelay_time_to_first_token_seconds_count") == 2  # plain calls have no first token
    assert moved("llmrelay_request_duration_seconds_count") == 6
    assert moved("llmrelay_store_operation_duration_seconds_count", operation="put") >= 4
    assert total(after, "llmrelay_requests_in_flight") == 0
    # any worker answers a scrape with every worker's values
    assert all(total(scrape(proxy.root), "llmrelay_requests_total") == total(after, "llmrelay_requests_total")
               for _ in range(4))  # fmt: skip
    names = {n for n, _, _ in after}
    assert all(re.fullmatch(r"llmrelay_[a-z_]+", n) for n in names)
    assert not any(ls.get(k, "").startswith("resp_") for _, ls, _ in after for k in ls)  # no ids as labels


# -- OpenTelemetry ---------------------------------------------------------------------------------


def test_a_translated_stream_leaves_a_trace_tree_continuing_the_callers_traceparent(
    anthropic_fake: FakeServer, openai_fake: FakeServer, tmp_path: Path
) -> None:
    with receiving(reply=OTLP_REPLY) as collector:
        config = write_config({"model_list": _model_list(anthropic_fake, openai_fake)}, tmp_path)
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "50"}
        with start_proxy("--config", str(config), env=env) as proxy:
            client = OpenAI(base_url=proxy.url, api_key="k", max_retries=0)
            trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
            headers = {"traceparent": f"00-{trace_id}-{parent}-01"}
            with client.responses.stream(model="claude", input="traced", extra_headers=headers) as stream:
                for _ in stream:
                    pass
                final = stream.get_final_response()
            names = {"chat claude", "POST", "store.put"}  # exported in batches, in any order
            got = wait_for(lambda: spans(collector), lambda s: names <= {x["name"] for x in s})
    assert all(p == "/v1/traces" for p in collector.paths)
    tree = [s for s in got if s["trace_id"] == trace_id]
    (root,) = [s for s in tree if s["name"] == "chat claude"]
    assert root["parent"] == parent and root["kind"] == 2  # SERVER, under the caller's span
    assert (
        root["attributes"].items()
        >= {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude",
            "gen_ai.response.model": "claude-sonnet-4-5",
            "gen_ai.response.id": final.id,
            "gen_ai.usage.input_tokens": final.usage.input_tokens if final.usage else -1,
            "gen_ai.usage.output_tokens": final.usage.output_tokens if final.usage else -1,
            "llmrelay.status": "completed",
            "llmrelay.stream": True,
        }.items()
    )
    children = {s["name"]: s for s in tree if s["parent"] == root["span_id"]}
    assert set(children) >= {"POST", "store.put"}
    upstream = children["POST"]
    assert upstream["kind"] == 3 and upstream["attributes"]["http.response.status_code"] == 200  # CLIENT
    assert upstream["attributes"]["url.full"].endswith("/v1/messages")
    assert not any(s["error"] for s in tree)


# -- webhooks, JSON logs, x-request-id ---------------------------------------------------------------


@pytest.fixture(scope="module")
def logging_proxy(
    anthropic_fake: FakeServer, openai_fake: FakeServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ProxyProcess, object, object]]:
    with receiving(fail_first=1) as successes, receiving() as failures:
        config = {
            "model_list": _model_list(anthropic_fake, openai_fake),
            "litellm_settings": {"success_callback": [successes.url + "/hook"], "failure_callback": ["generic_api"]},
        }
        path = write_config(config, tmp_path_factory.mktemp("logs"))
        env = {"GENERIC_LOGGER_ENDPOINT": failures.url + "/failed"}
        with start_proxy("--config", str(path), "--json-logs", env=env) as proxy:
            yield proxy, successes, failures


def test_a_webhook_gets_every_call_of_a_burst_exactly_once(logging_proxy: tuple) -> None:
    proxy, successes, failures = logging_proxy
    client = OpenAI(base_url=proxy.url, api_key="k", max_retries=0)

    def one(i: int) -> str:
        rid = f"burst-{i}"
        if i % 5 == 0:
            with client.responses.stream(model="demo", input="s", extra_headers={"x-request-id": rid}) as stream:
                for _ in stream:
                    pass
        else:
            client.responses.create(model="demo", input="b", extra_headers={"x-request-id": rid})
        return rid

    with ThreadPoolExecutor(8) as pool:
        sent = set(pool.map(one, range(30)))
    with pytest.raises(openai.InternalServerError):  # 502: the upstream cannot be reached
        client.responses.create(model="down", input="x", extra_headers={"x-request-id": "burst-failed"})

    def ids(received: object) -> list[str]:
        return [r["request_id"] for batch in posted_json(received) for r in batch]  # type: ignore[arg-type]

    got = wait_for(lambda: ids(successes), lambda v: len(v) >= len(sent))
    assert successes.refused == 1  # the first batch was refused once and sent again
    assert sorted(got) == sorted(sent)  # each once
    assert len(posted_json(successes)) < len(sent)  # batched
    failed = wait_for(lambda: ids(failures), bool)
    assert failed == ["burst-failed"] and failures.paths == ["/failed"]
    (record,) = posted_json(failures)[0]
    assert record["status"] == "error" and record["error_class"] == "APIConnectionError"
    assert record["model"] == "down" and record["deployment"] == "down-1"
    # a lone call after the burst is sent on its own, within the flush interval
    client.responses.create(model="demo", input="later", extra_headers={"x-request-id": "after-burst"})
    assert wait_for(lambda: ids(successes), lambda v: "after-burst" in v, timeout=5)[-1] == "after-burst"


def test_json_log_lines_and_request_ids(logging_proxy: tuple) -> None:
    proxy = logging_proxy[0]
    client = OpenAI(base_url=proxy.url, api_key="k", max_retries=0)
    given = {"x-request-id": "trace-me.1"}
    raw = client.responses.with_raw_response.create(model="claude", input="logged", extra_headers=given)
    assert raw.headers["x-request-id"] == "trace-me.1"
    response = raw.parse()
    made = client.responses.with_raw_response.create(model="demo", input="no id")
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    unsafe = client.responses.with_raw_response.create(model="demo", input="x", extra_headers={"x-request-id": "a b"})
    assert re.fullmatch(r"[0-9a-f]{32}", unsafe.headers["x-request-id"])
    too_long = client.responses.with_raw_response.create(model="demo", input="x",
                                                         extra_headers={"x-request-id": "x" * 129})  # fmt: skip
    assert re.fullmatch(r"[0-9a-f]{32}", too_long.headers["x-request-id"])
    with client.responses.with_streaming_response.create(
        model="demo", input="s", stream=True, extra_headers={"x-request-id": "stream-1"}
    ) as streamed:
        assert streamed.headers["x-request-id"] == "stream-1"
        streamed.read()
    with pytest.raises(openai.NotFoundError) as refused:
        client.responses.create(model="nope", input="x", extra_headers={"x-request-id": "err-1"})
    assert refused.value.response.headers["x-request-id"] == "err-1"

    def lines() -> list[dict[str, object]]:
        found = []
        for line in proxy.output().splitlines():
            if line.startswith("{"):
                parsed = json.loads(line)
                if parsed.get("logger") == "llmrelay.request":
                    found.append(parsed)
        return found

    logged = wait_for(lines, lambda ls: any(x["request_id"] == "stream-1" for x in ls))
    (line,) = [x for x in logged if x["request_id"] == "trace-me.1"]
    assert response.usage is not None
    assert line.items() >= {
        "level": "info", "response_id": response.id, "model": "claude", "provider": "anthropic",
        "status": "completed", "input_tokens": response.usage.input_tokens,
        "output_tokens": response.usage.output_tokens, "key_alias": None, "stream": False,
    }.items()  # fmt: skip
    assert line["latency_ms"] > 0 and isinstance(line["cost"], float) and line["deployment"]
    (streamed_line,) = [x for x in logged if x["request_id"] == "stream-1"]
    assert streamed_line["stream"] is True and streamed_line["ttft_ms"] <= streamed_line["latency_ms"]
