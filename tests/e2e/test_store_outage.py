"""A Postgres restart under two proxy instances: 503s in OpenAI's shape during the outage,
everything (requests, keys, cross-instance cancels over LISTEN/NOTIFY) working again after."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI
from websockets.exceptions import InvalidStatus

from tests.e2e.private_postgres import PrivatePostgres, private_postgres
from tests.e2e.proxy_process import ProxyProcess, start_proxy, write_config
from tests.e2e.test_background import config
from tests.e2e.waits import wait_for
from tests.fakes.process import FakeServer

# The openai SDK's own WebSocket plumbing warns about a websockets API it uses internally.
pytestmark = pytest.mark.filterwarnings("ignore:connect\\(\\) must be used:DeprecationWarning")
MASTER = "sk-master"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module")
def pg() -> Iterator[PrivatePostgres]:
    with private_postgres() as server:
        yield server


def http(method: str, url: str, body: Any = None, key: str = MASTER) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data, method=method, headers={"authorization": f"Bearer {key}",
                                                                    "content-type": "application/json"})  # fmt: skip
    try:
        with _OPENER.open(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def readiness(proxy: ProxyProcess) -> dict[str, Any]:
    status, body = http("GET", proxy.root + "/health/readiness")
    return {**body, "http_status": status}


def assert_unavailable(err: openai.APIStatusError) -> None:
    assert err.status_code == 503
    body = err.body
    assert isinstance(body, dict) and body["type"] == "service_unavailable" and body["code"] == "service_unavailable"
    text = body["message"].lower()
    assert "retry" in text and not any(word in text for word in ("postgres", "connect", "asyncpg", "errno"))


def test_a_postgres_restart_answers_503_meanwhile_then_everything_works_again(
    pg: PrivatePostgres, anthropic_fake: FakeServer, openai_fake: FakeServer, tmp_path: Path
) -> None:
    anthropic_fake.reset()
    cfg = write_config(config(anthropic_fake, openai_fake, master_key=MASTER, database_url=pg.url), tmp_path)
    with start_proxy("--config", str(cfg), store=None) as a, start_proxy("--config", str(cfg), store=None) as b:
        on_a = OpenAI(base_url=a.url, api_key=MASTER, max_retries=0)
        on_b = OpenAI(base_url=b.url, api_key=MASTER, max_retries=0)
        status, minted = http("POST", a.root + "/key/generate", {})
        assert status == 200
        as_key = OpenAI(base_url=b.url, api_key=minted["key"], max_retries=0)
        first = on_a.responses.create(model="claude", input="before")
        warmup = on_a.responses.create(model="claude", input="listen", background=True)  # A now LISTENs
        wait_for(lambda: on_a.responses.retrieve(warmup.id), lambda r: r.status == "completed")
        assert readiness(a)["channel"] == "listening"

        pg.stop()
        try:
            upstream_calls = len(anthropic_fake.requests())
            # Requests that need the store first are refused before the upstream is called.
            attempts = [
                lambda: on_a.responses.create(model="claude", input="x", previous_response_id=first.id),
                lambda: on_a.responses.create(model="claude", input="x", background=True),
                lambda: on_b.responses.retrieve(first.id),
                lambda: on_b.responses.cancel(warmup.id),
                lambda: as_key.responses.create(model="claude", input="x"),  # the key lookup
                lambda: as_key.models.list(),
            ]
            for attempt in attempts:
                with pytest.raises(openai.InternalServerError) as err:
                    attempt()
                assert_unavailable(err.value)
            assert len(anthropic_fake.requests()) == upstream_calls
            with pytest.raises(InvalidStatus) as refused, as_key.responses.connect():  # a WebSocket handshake
                pass
            assert refused.value.response.status_code == 503
            assert json.loads(refused.value.response.body)["error"]["code"] == "service_unavailable"
            for proxy in (a, b):
                ready = readiness(proxy)
                assert ready["http_status"] == 503 and ready["status"] == "unhealthy"
            assert readiness(a)["channel"] == "reconnecting"
        finally:
            pg.start()

        for proxy in (a, b):
            wait_for(lambda p=proxy: readiness(p), lambda r: r["http_status"] == 200)
        # A's LISTEN connection came back by itself, with no request asking for it
        assert wait_for(lambda: readiness(a), lambda r: r.get("channel") == "listening")["channel"] == "listening"
        assert on_b.responses.retrieve(first.id).output_text == first.output_text
        assert as_key.responses.create(model="claude", input="after").status == "completed"

        # A cancel on B reaches the job A runs over the re-opened LISTEN connection.
        anthropic_fake.enqueue({"delta_delay": 0.5})
        job = on_a.responses.create(model="claude", input="a b c d e f g h i j k l", background=True)
        wait_for(lambda: on_b.responses.retrieve(job.id), lambda r: r.status == "in_progress")
        assert on_b.responses.cancel(job.id).status == "cancelled"
        started = time.monotonic()
        wait_for(lambda: anthropic_fake.requests()[-1], lambda req: req.get("disconnected"), timeout=8)
        assert anthropic_fake.requests()[-1].get("disconnected") is True
        assert time.monotonic() - started < 1.5  # told over LISTEN/NOTIFY, not found by a status poll
        assert on_a.responses.retrieve(job.id).status == "cancelled"
