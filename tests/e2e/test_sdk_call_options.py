"""The functions on stored responses take `responses()`'s call options, sync and async: a new
process that shares the store file reaches a native background response's upstream with them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest

import llmrelay
from llmrelay import Relay
from tests.conftest import SDK
from tests.fakes.process import REPO_ROOT, FakeServer

KEY = "sk-call-options"
CREATE = """
import json, sys, llmrelay
relay = llmrelay.Relay(store=sys.argv[1])
print(llmrelay.responses(relay=relay, **json.loads(sys.argv[2])).id)
"""


@pytest.fixture(autouse=True)
def no_env_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    # the case these options exist for: no env vars name the upstream
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def store_file(tmp_path: Path) -> str:
    return str(tmp_path / "responses.db")


@pytest.fixture(params=["sync", "async"])
def fresh(request: pytest.FixtureRequest, store_file: str) -> SDK:
    """The SDK in this process, on a Relay that never saw the deployment: only the store is shared."""
    return SDK(request.param, Relay(store=store_file))


def create_elsewhere(store_file: str, fake: FakeServer, **params: object) -> str:
    """A response created by another process, with the upstream given per call."""
    body = {"model": "openai/o1-pro", "api_key": KEY, "api_base": fake.url, **params}
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    done = subprocess.run([sys.executable, "-c", CREATE, store_file, json.dumps(body)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    return done.stdout.strip()


def upstream_calls(fake: FakeServer, method: str) -> list[dict]:
    return [r for r in fake.requests() if r["method"] == method]


async def test_get_refreshes_a_native_background_response_from_a_new_process(
    fresh: SDK, upstream: FakeServer, store_file: str
) -> None:
    job = create_elsewhere(store_file, upstream, input="slow job", background=True)
    # without the options this process cannot reach the upstream: the stored state is all it has
    assert (await fresh.get(job)).status == "queued"
    assert upstream_calls(upstream, "GET") == []
    deadline = time.monotonic() + 20
    while (got := await fresh.get(job, api_key=KEY, api_base=upstream.url)).status != "completed":
        assert time.monotonic() < deadline, got.status
        time.sleep(0.05)
    assert got.id == job and got.output_text == "Echo (turns=1): slow job"
    (call, *_) = upstream_calls(upstream, "GET")
    assert call["headers"]["authorization"] == f"Bearer {KEY}"
    assert (await fresh.get(job)).status == "completed"  # the refreshed state was stored


async def test_cancel_from_a_new_process_reaches_the_upstream(
    fresh: SDK, upstream: FakeServer, store_file: str
) -> None:
    upstream.enqueue({"background_delay": 30})
    job = create_elsewhere(store_file, upstream, input="cancel me", background=True)
    with pytest.raises(openai.BadRequestError, match="api_key and api_base"):
        await fresh.cancel(job)
    cancelled = await fresh.cancel(
        job, api_key=KEY, api_base=upstream.url, custom_llm_provider="openai", timeout=30, num_retries=1,
        extra_headers={"x-trace": "t-1"}, extra_query={"tenant": "a"},
    )  # fmt: skip
    assert cancelled.id == job and cancelled.status == "cancelled"
    (call,) = upstream_calls(upstream, "POST")[1:]
    assert call["path"].endswith("/cancel") and call["query"] == {"tenant": "a"}
    assert call["headers"]["authorization"] == f"Bearer {KEY}" and call["headers"]["x-trace"] == "t-1"
    assert (await fresh.get(job)).status == "cancelled"


async def test_get_stream_replays_from_the_upstream_with_the_options(
    fresh: SDK, upstream: FakeServer, store_file: str
) -> None:
    job = create_elsewhere(store_file, upstream, input="replay me", background=True)
    if fresh.mode == "sync":
        events = list(llmrelay.get_responses(job, stream=True, relay=fresh.relay, api_key=KEY, api_base=upstream.url))
    else:
        stream = await llmrelay.aget_responses(job, stream=True, relay=fresh.relay, api_key=KEY, api_base=upstream.url)
        events = [e async for e in stream]
    assert events[-1].type == "response.completed"
    assert events[-1].response.id == job and events[-1].response.output_text == "Echo (turns=1): replay me"


async def test_delete_with_the_options_deletes_the_upstream_copy_too(
    fresh: SDK, upstream: FakeServer, store_file: str
) -> None:
    kept = create_elsewhere(store_file, upstream, input="keep me")
    deleted = await fresh.delete(kept, api_key=KEY, api_base=upstream.url)
    assert deleted.deleted and deleted.id == kept
    (call,) = upstream_calls(upstream, "DELETE")
    assert call["headers"]["authorization"] == f"Bearer {KEY}"
    with pytest.raises(openai.NotFoundError):
        await fresh.get(kept)


async def test_list_input_items_takes_the_options_and_unknown_ones_are_a_type_error(
    fresh: SDK, upstream: FakeServer, store_file: str
) -> None:
    rid = create_elsewhere(store_file, upstream, input="items")
    page = await fresh.items(rid, api_key=KEY, api_base=upstream.url, custom_llm_provider="openai")
    assert [i.content[0].text for i in page.data] == ["items"]
    for call in (fresh.items, fresh.get, fresh.cancel, fresh.delete):
        with pytest.raises(TypeError, match="api_bsae"):
            await call(rid, api_bsae=upstream.url)


async def test_responses_takes_custom_llm_provider(sdk: SDK, upstream: FakeServer, anthropic_fake: FakeServer) -> None:
    anthropic_fake.reset()
    r = await sdk.create(model="o1-pro", custom_llm_provider="openai", api_key=KEY, api_base=upstream.url, input="a")
    assert r.output_text == "Echo (turns=1): a"
    assert upstream.requests()[-1]["body"]["model"] == "o1-pro"
    r = await sdk.create(model="claude-sonnet-4-5", custom_llm_provider="anthropic", api_key=KEY,
                         api_base=anthropic_fake.url, input="b")  # fmt: skip
    assert r.output_text == "Echo (turns=1): b"
    (req,) = anthropic_fake.requests()
    assert req["body"]["model"] == "claude-sonnet-4-5" and req["headers"]["x-api-key"] == KEY
