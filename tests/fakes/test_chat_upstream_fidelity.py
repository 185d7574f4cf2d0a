"""The fake Chat Completions upstream, driven by the official OpenAI SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI, OpenAI
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tests.fakes import FakeServer, start_fake

MODEL = "fake-model"
KEY = "sk-test"
USER = [{"role": "user", "content": "hello"}]
LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look something up.",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
    },
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeServer]:
    with start_fake("tests.fakes.chat_upstream", models=f"{MODEL},other-model") as server:
        yield server


@pytest.fixture(autouse=True)
def fresh(fake: FakeServer) -> None:
    fake.reset()


@pytest.fixture
def client(fake: FakeServer) -> Iterator[OpenAI]:
    with OpenAI(api_key=KEY, base_url=fake.url, max_retries=0) as sdk:
        yield sdk


def wire(fake: FakeServer, body: dict[str, Any]) -> list[str]:
    """The raw SSE lines of a streamed completion."""
    headers = {"authorization": f"Bearer {KEY}"}
    reply = httpx.post(f"{fake.url}/chat/completions", json={**body, "stream": True}, headers=headers, timeout=10)
    assert reply.headers["content-type"] == "text/event-stream; charset=utf-8"
    return [line for line in reply.text.split("\n") if line]


def test_create_echoes_the_conversation(fake: FakeServer, client: OpenAI) -> None:
    messages = [
        {"role": "system", "content": "You echo."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "what is"}, {"type": "text", "text": "this?"}]},
    ]
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages)  # type: ignore[arg-type]
    completion = raw.parse()
    ChatCompletion.model_validate(raw.http_response.json(), strict=True)
    assert raw.headers["x-request-id"].startswith("req_")
    assert completion.id.startswith("chatcmpl-") and completion.object == "chat.completion"
    (choice,) = completion.choices
    assert choice.message.content == "Echo (turns=2): what is this?" and choice.message.role == "assistant"
    assert choice.message.refusal is None and choice.message.tool_calls is None and choice.finish_reason == "stop"
    usage = completion.usage
    assert usage is not None and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details is not None and usage.completion_tokens_details.reasoning_tokens == 0
    (recorded,) = fake.requests()
    assert recorded["path"] == "/v1/chat/completions" and recorded["headers"]["authorization"] == f"Bearer {KEY}"
    assert recorded["body"]["messages"] == messages


def test_stream_chunks_and_usage(fake: FakeServer, client: OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=USER,
            stream=True,
            stream_options={"include_usage": True},  # type: ignore[arg-type]
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo (turns=1): hello"
    assert [c.choices[0].finish_reason for c in chunks[:-1]] == [None] * (len(chunks) - 2) + ["stop"]
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None and last.usage.completion_tokens == 3
    assert all(c.usage is None for c in chunks[:-1]) and len({c.id for c in chunks}) == 1

    lines = wire(fake, {"model": MODEL, "messages": USER})
    assert lines[-1] == "data: [DONE]" and all(line.startswith("data: ") for line in lines)
    for line in lines[:-1]:
        chunk = json.loads(line.removeprefix("data: "))
        ChatCompletionChunk.model_validate(chunk)
        assert "usage" not in chunk  # only with include_usage


def test_tool_call_loop(client: OpenAI) -> None:
    first = client.chat.completions.create(model=MODEL, messages=USER, tools=[LOOKUP])  # type: ignore[list-item]
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.id.startswith("call_") and call.type == "function"
    assert call.function.name == "lookup" and json.loads(call.function.arguments) == {"q": "hello"}

    stream = client.chat.completions.create(model=MODEL, messages=USER, tools=[LOOKUP], stream=True)  # type: ignore[list-item]
    deltas = [d for c in stream if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert deltas[0].id and deltas[0].function and deltas[0].function.name == "lookup" and deltas[0].index == 0
    assert all(d.id is None and d.index == 0 for d in deltas[1:])
    assert json.loads("".join(d.function.arguments or "" for d in deltas if d.function)) == {"q": "hello"}

    history = [*USER, choice.message.model_dump(exclude_none=True)]
    answered = [*history, {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
    second = client.chat.completions.create(model=MODEL, messages=answered, tools=[LOOKUP])  # type: ignore[arg-type, list-item]
    assert second.choices[0].message.content == "Echo (turns=1): tool said sunny"
    assert second.choices[0].finish_reason == "stop"

    with pytest.raises(openai.BadRequestError, match="must be followed by tool messages"):
        client.chat.completions.create(model=MODEL, messages=[*history, *USER])  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError, match="must be a response to a preceeding message"):
        client.chat.completions.create(model=MODEL, messages=[*USER, answered[-1]])  # type: ignore[list-item]
    flat = {"type": "function", "name": "lookup", "parameters": {}}
    with pytest.raises(openai.BadRequestError, match=r"tools\[0\]\.function"):
        client.chat.completions.create(model=MODEL, messages=USER, tools=[flat])  # type: ignore[list-item]


def test_reasoning_content(client: OpenAI) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=USER, reasoning_effort="low")  # type: ignore[arg-type]
    message = completion.choices[0].message
    assert message.model_extra is not None and message.model_extra["reasoning_content"].startswith("The user said")
    assert completion.usage and completion.usage.completion_tokens_details
    assert completion.usage.completion_tokens_details.reasoning_tokens == len(
        message.model_extra["reasoning_content"].split()
    )
    stream = client.chat.completions.create(model=MODEL, messages=USER, reasoning_effort="low", stream=True)  # type: ignore[arg-type]
    deltas = [c.choices[0].delta for c in stream]
    reasoning = [d.model_extra.get("reasoning_content") for d in deltas if d.model_extra]
    assert "".join(r for r in reasoning if r) == message.model_extra["reasoning_content"]
    first_content = next(i for i, d in enumerate(deltas) if d.content)
    assert first_content > max(
        i for i, d in enumerate(deltas) if d.model_extra and d.model_extra.get("reasoning_content")
    )


def test_json_schema_stop_and_length(client: OpenAI) -> None:
    schema = {"type": "json_schema", "json_schema": {"name": "echo", "schema": {"type": "object"}}}
    structured = client.chat.completions.create(model=MODEL, messages=USER, response_format=schema)  # type: ignore[arg-type]
    assert json.loads(structured.choices[0].message.content or "") == {"echo": "hello", "turns": 1}
    stopped = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "a b STOP c"}], stop="STOP"
    )
    assert stopped.choices[0].message.content == "Echo (turns=1): a b " and stopped.choices[0].finish_reason == "stop"
    for limit in ({"max_tokens": 3}, {"max_completion_tokens": 3}):
        short = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "a b c"}], **limit)  # type: ignore[arg-type]
        assert short.choices[0].message.content == "Echo (turns=1): a" and short.choices[0].finish_reason == "length"


def test_errors_use_openai_shape(fake: FakeServer, client: OpenAI) -> None:
    with (
        OpenAI(api_key="bad-key", base_url=fake.url, max_retries=0) as bad,
        pytest.raises(openai.AuthenticationError) as denied,
    ):
        bad.chat.completions.create(model=MODEL, messages=USER)  # type: ignore[arg-type]
    assert denied.value.status_code == 401 and denied.value.code == "invalid_api_key"

    fake.enqueue({"status": 429, "headers": {"retry-after": "1"}})
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model=MODEL, messages=USER)  # type: ignore[arg-type]
    assert limited.value.code == "rate_limit_exceeded" and limited.value.response.headers["retry-after"] == "1"

    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="nope", messages=USER)  # type: ignore[arg-type]
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError, match="only allowed when 'stream' is enabled"):
        client.chat.completions.create(model=MODEL, messages=USER, stream_options={"include_usage": True})  # type: ignore[arg-type]
    assert [m.id for m in client.models.list()] == [MODEL, "other-model"]


def test_scripted_stream_failures(fake: FakeServer, client: OpenAI) -> None:
    fake.enqueue({"fail_after_events": 2})
    with pytest.raises(openai.APIError, match="The server had an error"):
        list(client.chat.completions.create(model=MODEL, messages=USER, stream=True))  # type: ignore[arg-type]
    fake.enqueue({"drop_after_events": 2})
    with pytest.raises(openai.APIConnectionError):  # the SDK wraps the cut connection
        list(client.chat.completions.create(model=MODEL, messages=USER, stream=True))  # type: ignore[arg-type]
    fake.enqueue({"text": "scripted words", "delay": 0.05})
    assert client.chat.completions.create(model=MODEL, messages=USER).choices[0].message.content == "scripted words"  # type: ignore[arg-type]
    assert [r.get("script") for r in fake.requests()] == [
        {"fail_after_events": 2},
        {"drop_after_events": 2},
        {"text": "scripted words", "delay": 0.05},
    ]


async def test_async_client(fake: FakeServer) -> None:
    async with AsyncOpenAI(api_key=KEY, base_url=fake.url, max_retries=0) as sdk:
        created = await sdk.chat.completions.create(model=MODEL, messages=USER)  # type: ignore[arg-type]
        stream = await sdk.chat.completions.create(model=MODEL, messages=USER, stream=True)  # type: ignore[arg-type]
        text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert created.choices[0].message.content == text == "Echo (turns=1): hello"
