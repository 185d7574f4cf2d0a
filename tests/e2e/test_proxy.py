"""The proxy as a real process, driven by the official openai SDK (the seed's snippets)."""

from __future__ import annotations

import http.client
import json
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.e2e.proxy_process import ProxyProcess, run_cli, start_proxy, write_config
from tests.fakes.process import FakeServer

SEED_CONFIG = {
    "model_list": [
        {
            "model_name": "openai/o1-pro",
            "litellm_params": {"model": "openai/o1-pro", "api_key": "os.environ/OPENAI_API_KEY"},
        },
        {
            "model_name": "computer-use-preview",
            "litellm_params": {"model": "openai/computer-use-preview", "api_key": "os.environ/OPENAI_API_KEY"},
        },
    ]
}
STORY = "Tell me a three sentence bedtime story about a unicorn."


@pytest.fixture(scope="module")
def proxy(openai_fake: FakeServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    config = write_config(SEED_CONFIG, tmp_path_factory.mktemp("cfg"))
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": openai_fake.url}
    with start_proxy("--config", str(config), env=env) as p:
        yield p


@pytest.fixture
def client(proxy: ProxyProcess, upstream: FakeServer) -> OpenAI:
    return OpenAI(base_url=proxy.url, api_key="your-api-key", max_retries=0)


def raw(proxy: ProxyProcess, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    req = urllib.request.Request(proxy.root + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


# -- the seed's snippets ---------------------------------------------------------------------


def test_seed_non_streaming_get_and_delete(client: OpenAI, upstream: FakeServer) -> None:
    response = client.responses.create(model="openai/o1-pro", input=STORY)
    assert response.output_text == f"Echo (turns=1): {STORY}"
    retrieved = client.responses.retrieve(response.id)
    assert retrieved.id == response.id and retrieved.output_text == response.output_text
    client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    assert upstream.requests()[0]["body"] == {"model": "o1-pro", "input": STORY}


def test_seed_streaming(client: OpenAI) -> None:
    events = list(client.responses.create(model="openai/o1-pro", input=STORY, stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    with client.responses.stream(model="openai/o1-pro", input=STORY) as stream:
        final = stream.get_final_response()
    assert client.responses.retrieve(final.id).output_text == final.output_text


def test_seed_computer_use_reaches_the_upstream_unchanged(client: OpenAI, upstream: FakeServer) -> None:
    request = {
        "tools": [{"type": "computer_use_preview", "display_width": 1024, "display_height": 768,
                   "environment": "browser"}],
        "input": [{"role": "user", "content": [{"type": "input_text",
                                                 "text": "Check the latest OpenAI news on bing.com."}]}],
        "reasoning": {"summary": "concise"},
        "truncation": "auto",
    }  # fmt: skip
    response = client.responses.create(model="computer-use-preview", **request)
    assert response.output[-1].type == "computer_call"
    assert upstream.requests()[0]["body"] == {"model": "computer-use-preview", **request}


async def test_async_client_and_chaining(proxy: ProxyProcess, upstream: FakeServer) -> None:
    client = AsyncOpenAI(base_url=proxy.url, api_key="k", max_retries=0)
    first = await client.responses.create(model="openai/o1-pro", input="one")
    second = await client.responses.create(model="openai/o1-pro", input="two", previous_response_id=first.id)
    assert second.output_text == "Echo (turns=2): two"
    items = await client.responses.input_items.list(second.id)
    assert [i.content[0].text for i in items.data] == ["two"]
    stream = await client.responses.create(model="openai/o1-pro", input="three", stream=True,
                                           previous_response_id=second.id)  # fmt: skip
    events = [e async for e in stream]
    assert events[-1].response.output_text == "Echo (turns=3): three"


# -- endpoints and errors ----------------------------------------------------------------------


def test_routes_without_v1_models_and_health(proxy: ProxyProcess, client: OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["openai/o1-pro", "computer-use-preview"]
    status, _, body = raw(proxy, "GET", "/models")
    assert status == 200 and json.loads(body)["object"] == "list"
    assert raw(proxy, "GET", "/health/liveliness")[0] == 200
    status, _, body = raw(proxy, "GET", "/health/readiness")
    assert status == 200 and json.loads(body)["store"] == "connected"
    created = client.responses.create(model="openai/o1-pro", input="x")
    status, _, body = raw(proxy, "GET", f"/responses/{created.id}")
    assert status == 200 and json.loads(body)["id"] == created.id


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b"{not json", 400, None),
        (b"[1, 2]", 400, None),
        (b'{"model": "openai/o1-pro"}', 400, "input"),
        (b'{"model": "openai/o1-pro", "input": 5}', 400, "input"),
        (b'{"model": "openai/o1-pro", "input": "x", "temperature": "hot"}', 400, "temperature"),
        (b'{"model": "openai/o1-pro", "input": "x", "surprise": 1}', 400, "surprise"),
        (b'{"model": "openai/o1-pro", "input": "x", "api_base": "http://evil"}', 400, "api_base"),
        (b'{"model": "no-such-model", "input": "x"}', 404, "model"),
        (b'{"model": "openai/o1-pro", "input": [{"role": "user", "content": 123}]}', 400, "input[0].content"),
        (b'{"model": "openai/o1-pro", "input": [{"foo": 1}]}', 400, "input[0].content"),
        (b'{"model": "openai/o1-pro", "input": "x", "tools": [{"type": "function", "name": "f"}, {"type": "?"}]}',
         400, "tools[1].type"),
        (b'{"model": "openai/o1-pro", "input": "x", "top_p": 2}', 400, "top_p"),
        # parses (orjson reads 1024 levels) but is deeper than the store can write
        pytest.param(b'{"model": "openai/o1-pro", "input": "x", "metadata": {"k": ' + b"[" * 300 + b"]" * 300 + b"}}",
                     400, "metadata.k[0][0][0][0][0][0]", id="nested-300-levels"),
    ],
)  # fmt: skip
def test_bad_input_is_a_4xx_in_openai_shape(proxy: ProxyProcess, body: bytes, status: int, param: str | None) -> None:
    got, _, payload = raw(proxy, "POST", "/v1/responses", body, {"content-type": "application/json"})
    assert got == status
    error = json.loads(payload)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param and error["message"]
    if status == 404:
        assert error["code"] == "model_not_found"


def test_unknown_routes_ids_and_huge_bodies(proxy: ProxyProcess) -> None:
    status, _, payload = raw(proxy, "GET", "/v1/nothing-here")
    assert status == 404 and "error" in json.loads(payload)
    status, _, payload = raw(proxy, "GET", "/v1/responses/resp_unknown")
    assert status == 404 and json.loads(payload)["error"]["type"] == "invalid_request_error"
    status, _, payload = raw(proxy, "GET", "/v1/responses/resp_unknown/input_items?limit=abc")
    assert status == 400
    # digits str.isdigit() accepts and int() does not
    for path in ("/v1/responses/resp_unknown/input_items?limit=%C2%B2",
                 "/v1/responses/resp_unknown?stream=true&starting_after=--5",
                 "/v1/conversations/conv_unknown/items?limit=%C2%B2"):  # fmt: skip
        status, _, payload = raw(proxy, "GET", path)
        assert status == 400 and json.loads(payload)["error"]["param"] in ("limit", "starting_after"), path
    # Announce a body over the limit: the proxy answers 413 before reading it.
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    conn.putrequest("POST", "/v1/responses")
    conn.putheader("content-type", "application/json")
    conn.putheader("content-length", str(33 * 1024 * 1024))
    conn.endheaders()
    answer = conn.getresponse()
    assert answer.status == 413 and json.loads(answer.read())["error"]["code"] == "request_too_large"
    conn.close()


def test_a_trailing_slash_is_a_404_naming_the_route(proxy: ProxyProcess) -> None:
    body = b'{"model": "openai/o1-pro", "input": "x"}'
    status, headers, payload = raw(proxy, "POST", "/v1/responses/", body, {"content-type": "application/json"})
    assert status == 404 and "location" not in {k.lower() for k in headers}
    error = json.loads(payload)["error"]
    assert error["message"] == "Unknown route: POST /v1/responses/ (without the trailing slash: /v1/responses)"


def test_upstream_429_keeps_retry_after(proxy: ProxyProcess, client: OpenAI, upstream: FakeServer) -> None:
    upstream.enqueue({"status": 429, "headers": {"retry-after": "3"}})
    with pytest.raises(openai.RateLimitError) as exc:
        client.responses.create(model="openai/o1-pro", input="x")
    assert exc.value.response.headers["retry-after"] == "3"
    upstream.enqueue({"status": 500})
    with pytest.raises(openai.InternalServerError):
        client.responses.create(model="openai/o1-pro", input="x")


def test_stream_failure_after_headers_is_an_event_then_a_clean_close(client: OpenAI, upstream: FakeServer) -> None:
    upstream.enqueue({"drop_after_events": 3})
    events = list(client.responses.create(model="openai/o1-pro", input="x", stream=True))
    assert events[-1].type == "response.failed"


# -- real streaming, disconnects, shutdown -----------------------------------------------------


def test_first_delta_arrives_before_the_upstream_finishes(client: OpenAI, upstream: FakeServer) -> None:
    upstream.enqueue({"delta_delay": 0.3})
    started = time.monotonic()
    first_delta = None
    for event in client.responses.create(model="openai/o1-pro", input="one two three four five", stream=True):
        if event.type == "response.output_text.delta" and first_delta is None:
            first_delta = time.monotonic() - started
    total = time.monotonic() - started
    assert first_delta is not None and total > 1.5
    assert first_delta < total - 1.0


def test_client_disconnect_cancels_the_upstream_and_stores_nothing(client: OpenAI, upstream: FakeServer) -> None:
    upstream.enqueue({"delta_delay": 0.3})
    stream = client.responses.create(model="openai/o1-pro", input="a b c d e f g h", stream=True)
    response_id = None
    for event in stream:
        if event.type == "response.created":
            response_id = event.response.id
        if event.type == "response.output_text.delta":
            break
    stream.close()
    deadline = time.monotonic() + 5
    while not upstream.requests()[-1].get("disconnected") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upstream.requests()[-1].get("disconnected") is True
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response_id)


def test_sigterm_lets_an_inflight_stream_finish_and_exits_0(openai_fake: FakeServer, tmp_path: Path) -> None:
    openai_fake.reset()
    config = write_config(SEED_CONFIG, tmp_path)
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": openai_fake.url}
    proxy = start_proxy("--config", str(config), env=env)
    try:
        openai_fake.enqueue({"delta_delay": 0.2})
        client = OpenAI(base_url=proxy.url, api_key="k", max_retries=0)
        stream = client.responses.create(model="openai/o1-pro", input="one two three four five six", stream=True)
        first = next(iter(stream))
        assert first.type == "response.created"
        threading.Timer(0.1, proxy.process.send_signal, args=(signal.SIGTERM,)).start()
        rest = list(stream)
        assert rest[-1].type == "response.completed"
        assert proxy.process.wait(timeout=15) == 0
    finally:
        proxy.stop()


# -- auth, startup ---------------------------------------------------------------------------


def test_master_key(openai_fake: FakeServer, tmp_path: Path) -> None:
    config = write_config({**SEED_CONFIG, "general_settings": {"master_key": "sk-master"}}, tmp_path)
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": openai_fake.url}
    with start_proxy("--config", str(config), env=env) as proxy:
        with pytest.raises(openai.AuthenticationError) as exc:
            OpenAI(base_url=proxy.url, api_key="wrong", max_retries=0).responses.create(
                model="openai/o1-pro", input="x"
            )
        assert exc.value.body["code"] == "invalid_api_key"
        status, _, _ = raw(proxy, "GET", "/v1/models")
        assert status == 401
        ok = OpenAI(base_url=proxy.url, api_key="sk-master", max_retries=0)
        assert ok.responses.create(model="openai/o1-pro", input="x").status == "completed"
        assert "sk-master" not in proxy.output()


@pytest.mark.parametrize(
    ("config", "env", "needle"),
    [
        ("model_list: [unclosed", {}, "not valid YAML"),
        ("", {}, "is empty: give at least a model_list"),
        ("# only a comment\n", {}, "is empty: give at least a model_list"),
        ({"model_list": [{"model_name": "a", "litellm_params": {"model": "openai/x"}},
                         {"model_name": "b", "litellm_params": {"model": "nope/x"}}]}, {},
         "model_list[1].litellm_params.model: Unknown provider 'nope'"),
        ({"model_list": [{"model_name": "a", "litellm_params": {"model": "openai/x",
                                                               "api_key": "os.environ/NOT_SET_ANYWHERE"}}]},
         {}, "model_list[0].litellm_params.api_key: environment variable NOT_SET_ANYWHERE is not set"),
        ({"model_list": [{"model_name": "a", "litellm_params": {"model": "openai/x", "colour": "red"}}]}, {},
         "model_list[0].litellm_params.colour: unknown key"),
        ({"model_list": [], "general_setings": {}}, {}, "general_setings: unknown key"),
    ],
)  # fmt: skip
def test_bad_config_stops_startup_with_the_path_and_exit_2(
    tmp_path: Path, config: object, env: dict, needle: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    result = run_cli("--config", str(path), "--port", "1", env=env)
    assert result.returncode == 2
    assert needle in result.stderr
    assert "RUNNING" not in result.stdout


def test_model_flag_without_a_config(openai_fake: FakeServer) -> None:
    openai_fake.reset()
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": openai_fake.url}
    with start_proxy("--model", "openai/gpt-4o", env=env) as proxy:
        client = OpenAI(base_url=proxy.url, api_key="k", max_retries=0)
        assert client.responses.create(model="openai/gpt-4o", input="hi").output_text == "Echo (turns=1): hi"
        assert "RUNNING on http://127.0.0.1:" in proxy.output()


def test_demo_runs_with_no_api_key(tmp_path: Path) -> None:
    with start_proxy("demo", env={"OPENAI_API_KEY": ""}, store=str(tmp_path / "demo.db")) as proxy:
        client = OpenAI(base_url=proxy.url, api_key="anything", max_retries=0)
        first = client.responses.create(model="demo", input="Hello!")
        assert first.output_text == "[llmrelay demo model, not an LLM] Turn 1. You said: Hello!"
        with client.responses.stream(model="demo", input="Again", previous_response_id=first.id) as stream:
            second = stream.get_final_response()
        assert second.output_text.endswith("Turn 2. You said: Again")
        assert client.responses.retrieve(second.id).output_text == second.output_text
        client.responses.delete(first.id)
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(first.id)


def test_workers(openai_fake: FakeServer, tmp_path: Path) -> None:
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": openai_fake.url}
    config = write_config(SEED_CONFIG, tmp_path)
    with start_proxy("--config", str(config), "--workers", "2", env=env, store=str(tmp_path / "w.db")) as proxy:
        client = OpenAI(base_url=proxy.url, api_key="k", max_retries=0)
        ids = [client.responses.create(model="openai/o1-pro", input=f"n{i}").id for i in range(6)]
        # any worker finds any response: they share the SQLite file
        assert all(client.responses.retrieve(i).status == "completed" for i in ids)


def test_input_tokens_count(client: OpenAI, upstream: FakeServer) -> None:
    first = client.responses.input_tokens.count(model="openai/o1-pro", input="one two three")
    assert first.input_tokens > 0 and first.object == "response.input_tokens"
    chained = client.responses.create(model="openai/o1-pro", input="one")
    more = client.responses.input_tokens.count(model="openai/o1-pro", input="two", previous_response_id=chained.id)
    assert more.input_tokens > client.responses.input_tokens.count(model="openai/o1-pro", input="two").input_tokens
    assert upstream.requests()[-1]["path"] == "/v1/responses/input_tokens"
    with pytest.raises(openai.BadRequestError):
        client.responses.input_tokens.count(input="no model")


def test_entries_with_one_model_name_form_a_group(
    openai_fake: FakeServer, openai_fake_b: FakeServer, tmp_path: Path
) -> None:
    openai_fake.reset()
    openai_fake_b.reset()
    group = [{"model_name": "gpt", "litellm_params": {"model": "openai/gpt-4o", "api_key": "k", "api_base": f.url}}
             for f in (openai_fake, openai_fake_b)]  # fmt: skip
    with start_proxy("--config", str(write_config({"model_list": group}, tmp_path))) as proxy:
        client = OpenAI(base_url=proxy.url, api_key="k", max_retries=0)
        first = None
        for _ in range(16):
            first = client.responses.create(model="gpt", input="spread")
        assert len(openai_fake.requests()) > 0 and len(openai_fake_b.requests()) > 0
        assert [m.id for m in client.models.list()] == ["gpt"]
        # a continuation goes where the upstream holds the previous response
        before = (len(openai_fake.requests()), len(openai_fake_b.requests()))
        client.responses.create(model="gpt", input="next", previous_response_id=first.id)
        after = (len(openai_fake.requests()), len(openai_fake_b.requests()))
        went = openai_fake if after[0] > before[0] else openai_fake_b
        assert went.requests()[-1]["body"].get("previous_response_id")  # native continuation, no replay
