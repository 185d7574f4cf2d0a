"""Automatic prompt caching through the proxy, driven by the openai SDK: a Codex-style conversation
against the Anthropic, Bedrock and Vertex fakes, which account cache reads as the providers do.

Every request marks its newest message, so each request reads the whole prompt of the one before
it (`cached_tokens` == the previous request's `input_tokens`) and writes what it adds."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from openai import OpenAI
from openai.types.responses import Response

import llmrelay
from tests.e2e.codex_conversation import SHELL, converse, instructions
from tests.e2e.proxy_process import ProxyProcess, start_proxy, write_config
from tests.fakes import bedrock_upstream as aws
from tests.fakes.google_oauth import PROJECT, service_account
from tests.fakes.process import FakeServer

CLAUDE = "anthropic/claude-sonnet-4-5"


@pytest.fixture(scope="module")
def proxy(
    anthropic_fake: FakeServer,
    bedrock_fake: FakeServer,
    vertex_fake: FakeServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ProxyProcess]:
    folder = tmp_path_factory.mktemp("cache")
    account = folder / "sa.json"
    account.write_text(json.dumps(service_account(vertex_fake)))
    claude = {"model": CLAUDE, "api_base": anthropic_fake.url, "api_key": "test-key"}
    bedrock = {"model": "bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0", "api_base": bedrock_fake.url,
               "aws_access_key_id": aws.ACCESS_KEY, "aws_secret_access_key": aws.SECRET_KEY}  # fmt: skip
    vertex = {"model": "vertex_ai/claude-sonnet-4-5", "api_base": vertex_fake.root, "vertex_project": PROJECT,
              "vertex_location": "us-east5", "vertex_credentials": str(account)}  # fmt: skip
    model_list = [
        {"model_name": "claude", "litellm_params": claude},
        {"model_name": "claude-uncached", "litellm_params": {**claude, "prompt_caching": False}},
        {"model_name": "bedrock", "litellm_params": bedrock},
        {"model_name": "bedrock-uncached", "litellm_params": {**bedrock, "prompt_caching": False}},
        {"model_name": "vertex-claude", "litellm_params": vertex},
    ]
    with start_proxy("--config", str(write_config({"model_list": model_list}, folder))) as p:
        yield p


@pytest.fixture
def client(proxy: ProxyProcess) -> OpenAI:
    return OpenAI(base_url=proxy.url, api_key="k", max_retries=0)


def usages(responses: list[Response]) -> list[tuple[int, int]]:
    """(input_tokens, cached_tokens) of each response."""
    out = []
    for r in responses:
        assert r.usage is not None
        out.append((r.usage.input_tokens, r.usage.input_tokens_details.cached_tokens))
    return out


def assert_each_request_reads_the_one_before(responses: list[Response]) -> None:
    seen = usages(responses)
    assert seen[0][1] == 0 and seen[0][0] > 1500  # the first request writes: nothing to read yet
    for (before, _), (now, cached) in itertools.pairwise(seen):
        assert cached == before < now  # the whole earlier prompt is read back; only the new part is written
    for r, (now, cached) in zip(responses, seen, strict=True):
        assert r.usage is not None
        assert r.usage.input_tokens_details.model_dump().get("cache_write_tokens", 0) == now - cached


@pytest.mark.parametrize("chain", [False, True], ids=["resent", "previous_response_id"])
def test_a_ten_turn_codex_conversation_reads_its_prefix_from_the_cache(client: OpenAI, chain: bool) -> None:
    responses = converse(client.responses.create, "claude", turns=10, chain=chain)
    assert len(responses) == 20
    assert_each_request_reads_the_one_before(responses)
    # turns 2..10 (their first request each) read every earlier turn
    assert all(cached > 0 for _, cached in usages(responses)[2::2])


def test_with_prompt_caching_off_nothing_is_cached(client: OpenAI, anthropic_fake: FakeServer) -> None:
    responses = converse(client.responses.create, "claude-uncached", turns=3)
    assert [cached for _, cached in usages(responses)] == [0] * 6
    assert all("cache_control" not in json.dumps(r["body"]) for r in anthropic_fake.requests()[-6:])


def test_a_stream_reports_the_cache_read(client: OpenAI) -> None:
    common: dict[str, Any] = {"model": "claude", "instructions": instructions(), "tools": [SHELL]}
    first = client.responses.create(**common, input="Task: list the files.")
    call = first.output[-1]
    assert call.type == "function_call"
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "a.txt"}
    events = list(client.responses.create(**common, input=[output], previous_response_id=first.id, stream=True))
    final = events[-1]
    assert final.type == "response.completed" and final.response.usage is not None and first.usage is not None
    assert final.response.usage.input_tokens_details.cached_tokens == first.usage.input_tokens


@pytest.mark.parametrize("model", ["bedrock", "vertex-claude"])
def test_bedrock_and_vertex_claude_read_the_turn_before(client: OpenAI, model: str) -> None:
    responses = converse(client.responses.create, model, turns=1)
    assert_each_request_reads_the_one_before(responses)


def test_bedrock_with_prompt_caching_off(client: OpenAI, bedrock_fake: FakeServer) -> None:
    responses = converse(client.responses.create, "bedrock-uncached", turns=1)
    assert [cached for _, cached in usages(responses)] == [0, 0]
    assert all("cachePoint" not in json.dumps(r["body"]) for r in bedrock_fake.requests()[-2:])


async def test_the_sdk_switches_it_off_per_call(anthropic_fake: FakeServer) -> None:
    relay = llmrelay.Relay(store="memory")
    options = {"model": CLAUDE, "api_base": anthropic_fake.url, "api_key": "test-key", "input": "hi"}
    rules = instructions()
    on = await llmrelay.aresponses(relay=relay, **options, instructions=rules)
    off = await llmrelay.aresponses(relay=relay, **options, instructions=rules, prompt_caching=False)
    sent = [r["body"] for r in anthropic_fake.requests()[-2:]]
    assert "cache_control" in json.dumps(sent[0]) and "cache_control" not in json.dumps(sent[1])
    assert on.usage is not None and on.usage.input_tokens_details.model_dump()["cache_write_tokens"] > 0
    assert off.usage is not None and off.usage.input_tokens_details.cached_tokens == 0
