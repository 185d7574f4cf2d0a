"""The fake Anthropic upstream, driven by the official SDK: if the SDK is happy, the wire format is right."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest
from anthropic import Anthropic, AsyncAnthropic
from anthropic.types import (
    Message,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawContentBlockStopEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
    RawMessageStreamEvent,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
)
from anthropic.types.beta import BetaMessage
from pydantic import TypeAdapter

from tests.fakes import FakeServer, start_fake

MODEL = "claude-sonnet-4-6"
KEY = "sk-ant-test"
EVENTS: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)
LOOKUP = {
    "name": "lookup",
    "description": "Look something up.",
    "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
}
THINKING = {"type": "enabled", "budget_tokens": 1024}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeServer]:
    with start_fake("tests.fakes.anthropic_upstream") as server:
        yield server


@pytest.fixture(autouse=True)
def fresh(fake: FakeServer) -> None:
    fake.reset()


@pytest.fixture
def client(fake: FakeServer) -> Iterator[Anthropic]:
    # The SDK appends /v1/messages itself: it takes the server root.
    with Anthropic(api_key=KEY, base_url=fake.root, max_retries=0) as sdk:
        yield sdk


def post(fake: FakeServer, path: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    """A plain HTTP call with classic x-api-key auth, to see exactly what is on the wire."""
    sent = {"x-api-key": KEY, "anthropic-version": "2023-06-01", **(headers or {})}
    return httpx.post(fake.url + path, json=body, headers={k: v for k, v in sent.items() if v}, timeout=10)


def frames(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) pairs exactly as they come off the wire."""
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    pairs = []
    for block in response.text.split("\n\n"):
        if block:
            name, data = block.split("\n")
            pairs.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return pairs


def ask(text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 256, "messages": [{"role": "user", "content": text}], **extra}


def same_shape(streamed: Message, created: Message) -> None:
    """A streamed message equals a created one, up to ids (and the helper's parsed_output fields)."""

    def shape(message: Message) -> dict[str, Any]:
        dumped = message.model_dump(exclude={"id"})
        for block in dumped["content"]:
            block.pop("parsed_output", None)
            block.pop("id", None)
        return dumped

    assert shape(streamed) == shape(created)


def test_create_echoes_and_validates_strictly(fake: FakeServer, client: Anthropic) -> None:
    raw = client.messages.with_raw_response.create(**ask(system="Be brief."))
    message = raw.parse()
    assert raw.headers["request-id"].startswith("req_")
    Message.model_validate(raw.http_response.json(), strict=True)
    assert message.id.startswith("msg_") and message.type == "message" and message.role == "assistant"
    assert message.content == [TextBlock(type="text", text="Echo (turns=1): hello")]
    assert message.stop_reason == "end_turn" and message.stop_sequence is None and message.model == MODEL
    assert message.usage.input_tokens == 3 and message.usage.output_tokens == 3  # words: "Be brief. hello"
    assert message.usage.cache_creation_input_tokens == 0 and message.usage.cache_read_input_tokens == 0
    (recorded,) = fake.requests()
    assert recorded["path"] == "/v1/messages" and recorded["headers"]["anthropic-version"]
    assert recorded["body"]["system"] == "Be brief." and recorded["body"]["max_tokens"] == 256
    # The current SDK sends its key as a bearer token; classic clients send x-api-key. Both work.
    assert recorded["headers"]["authorization"] == f"Bearer {KEY}"
    assert post(fake, "/messages", ask()).json()["content"][0]["text"] == "Echo (turns=1): hello"


def test_conversation_system_blocks_and_images(client: Anthropic) -> None:
    message = client.messages.create(
        model=MODEL,
        max_tokens=256,
        system=[{"type": "text", "text": "You echo."}, {"type": "text", "text": "Always."}],
        messages=[
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
                    {"type": "text", "text": "this?"},
                ],
            },
        ],
    )
    assert message.content[0].type == "text" and message.content[0].text == "Echo (turns=2): what is this?"
    with pytest.raises(anthropic.BadRequestError, match="does not appear to be a valid jpeg image"):
        bad = {"type": "base64", "media_type": "image/jpeg", "data": PNG}
        client.messages.create(**ask(messages=[{"role": "user", "content": [{"type": "image", "source": bad}]}]))


def test_stream_event_order_and_payloads(fake: FakeServer, client: Anthropic) -> None:
    wire = frames(post(fake, "/messages", ask(stream=True)))
    for name, data in wire:
        assert name == data["type"]
        if name != "ping":  # keep-alive, not part of the SDK's event union
            EVENTS.validate_python(data)
    assert [name for name, _ in wire] == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * 3,  # "Echo ", "(turns=1): ", "hello"
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = wire[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["usage"]["output_tokens"] == 1
    assert wire[1][1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    assert wire[-2][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 3},
    }

    events = list(client.messages.create(**ask(), stream=True))  # the SDK drops pings
    kinds = [RawMessageStartEvent, RawContentBlockStartEvent, *[RawContentBlockDeltaEvent] * 3]
    assert [type(e) for e in events] == [*kinds, RawContentBlockStopEvent, RawMessageDeltaEvent, RawMessageStopEvent]


def test_stream_helper_final_message_equals_create(client: Anthropic) -> None:
    with client.messages.stream(**ask("stream me")) as stream:
        text = "".join(stream.text_stream)
        streamed = stream.get_final_message()
    assert text == "Echo (turns=1): stream me"
    same_shape(streamed, client.messages.create(**ask("stream me")))


def test_tool_use_loop_streamed_and_not(client: Anthropic) -> None:
    first = client.messages.create(**ask("weather in Paris"), tools=[LOOKUP])
    assert first.stop_reason == "tool_use"
    (call,) = first.content
    assert isinstance(call, ToolUseBlock) and call.id.startswith("toolu_") and call.name == "lookup"
    assert call.input == {"q": "weather in Paris"}

    with client.messages.stream(**ask("weather in Paris"), tools=[LOOKUP]) as stream:
        partial = "".join(e.delta.partial_json for e in stream if e.type == "content_block_delta")
        streamed = stream.get_final_message()
    assert json.loads(partial) == {"q": "weather in Paris"}
    same_shape(streamed, first)

    result = {"type": "tool_result", "tool_use_id": call.id, "content": [{"type": "text", "text": "sunny"}]}
    history = [ask("weather in Paris")["messages"][0], {"role": "assistant", "content": first.content}]
    second = client.messages.create(**ask(messages=[*history, {"role": "user", "content": [result]}]), tools=[LOOKUP])
    assert second.stop_reason == "end_turn" and second.content[0].type == "text"
    assert second.content[0].text == "Echo (turns=1): tool said sunny"  # a results-only turn is not a user turn

    with pytest.raises(anthropic.BadRequestError, match="`tool_use` ids were found without `tool_result` blocks"):
        client.messages.create(**ask(messages=[*history, {"role": "user", "content": "and?"}]), tools=[LOOKUP])


def test_thinking_blocks_are_signed_and_checked(client: Anthropic) -> None:
    first = client.messages.create(**ask("weather?", max_tokens=2048), thinking=THINKING, tools=[LOOKUP])
    thinking, call = first.content
    assert isinstance(thinking, ThinkingBlock) and thinking.thinking and thinking.signature
    assert isinstance(call, ToolUseBlock)

    with client.messages.stream(**ask("weather?", max_tokens=2048), thinking=THINKING, tools=[LOOKUP]) as stream:
        deltas = [e.delta.type for e in stream if e.type == "content_block_delta" and e.index == 0]
        streamed = stream.get_final_message()
    assert set(deltas[:-1]) == {"thinking_delta"} and deltas[-1] == "signature_delta"
    same_shape(streamed, first)

    result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}]}
    replay = [ask("weather?")["messages"][0], {"role": "assistant", "content": first.content}, result]
    second = client.messages.create(**ask(max_tokens=2048, messages=replay), thinking=THINKING, tools=[LOOKUP])
    # Without interleaved thinking the turn's one thinking block stays at its start.
    assert [b.type for b in second.content] == ["text"]

    def resend(blocks: list[dict[str, Any]]) -> None:
        turns = [replay[0], {"role": "assistant", "content": blocks}, result]
        client.messages.create(**ask(max_tokens=2048, messages=turns), thinking=THINKING, tools=[LOOKUP])

    unsigned = {"type": "thinking", "thinking": thinking.thinking}
    with pytest.raises(
        anthropic.BadRequestError, match=r"messages\.1\.content\.0\.thinking\.signature: Field required"
    ):
        resend([unsigned, call.model_dump()])
    with pytest.raises(anthropic.BadRequestError, match="Invalid `signature` in `thinking` block"):
        resend([{**unsigned, "thinking": "edited", "signature": thinking.signature}, call.model_dump()])
    with pytest.raises(anthropic.BadRequestError, match="must start with a thinking block"):
        resend([call.model_dump()])
    with pytest.raises(anthropic.BadRequestError, match="budget_tokens"):
        client.messages.create(**ask(max_tokens=2048), thinking={"type": "enabled", "budget_tokens": 100})
    adaptive = client.messages.create(**ask(max_tokens=2048), thinking={"type": "adaptive"})
    assert [b.type for b in adaptive.content] == ["thinking", "text"]


@pytest.mark.parametrize(
    ("version", "beta"),
    [("computer_20250124", "computer-use-2025-01-24"), ("computer_20251124", "computer-use-2025-11-24")],
)
def test_computer_use_loop(fake: FakeServer, client: Anthropic, version: str, beta: str) -> None:
    tool = {"type": version, "name": "computer", "display_width_px": 1024, "display_height_px": 768}
    messages: list[dict[str, Any]] = [{"role": "user", "content": "open the page"}]
    actions = []
    for _ in range(4):
        reply = client.beta.messages.create(**ask(messages=messages), tools=[tool], betas=[beta])  # type: ignore[arg-type]
        assert isinstance(reply, BetaMessage)
        if reply.stop_reason != "tool_use":
            break
        (call,) = reply.content
        assert call.type == "tool_use" and call.name == "computer"
        actions.append(call.input)
        screenshot = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
        result = {"type": "tool_result", "tool_use_id": call.id, "content": [screenshot]}
        messages += [{"role": "assistant", "content": reply.content}, {"role": "user", "content": [result]}]
    assert actions == [
        {"action": "screenshot"},
        {"action": "left_click", "coordinate": [100, 200]},
        {"action": "type", "text": "hello"},
    ]
    assert reply.content[0].type == "text" and reply.content[0].text == "Echo (turns=1): tool said image"
    recorded = fake.requests()
    assert {r["headers"]["anthropic-beta"] for r in recorded} == {beta}
    with pytest.raises(anthropic.BadRequestError, match=beta):
        client.messages.create(**ask(), tools=[tool])  # type: ignore[list-item]


def test_stop_sequences_and_max_tokens(client: Anthropic) -> None:
    stopped = client.messages.create(**ask("one two STOP three"), stop_sequences=["STOP", "never"])
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == "STOP"
    assert stopped.content[0].type == "text" and stopped.content[0].text == "Echo (turns=1): one two "
    short = client.messages.create(**ask("one two three", max_tokens=3))
    assert short.stop_reason == "max_tokens" and short.stop_sequence is None and short.usage.output_tokens == 3
    assert short.content[0].type == "text" and short.content[0].text == "Echo (turns=1): one"


def test_count_tokens_matches_usage(client: Anthropic) -> None:
    counted = client.messages.count_tokens(model=MODEL, system="Be brief.", messages=ask("a b c")["messages"])
    created = client.messages.create(**ask("a b c"), system="Be brief.")
    assert counted.input_tokens == created.usage.input_tokens == 5


def test_request_errors_use_anthropic_shape(fake: FakeServer, client: Anthropic) -> None:
    with (
        Anthropic(api_key="bad-key", base_url=fake.root, max_retries=0) as bad,
        pytest.raises(anthropic.AuthenticationError) as caught,
    ):
        bad.messages.create(**ask())
    assert caught.value.status_code == 401 and caught.value.type == "authentication_error"
    assert caught.value.request_id and caught.value.request_id.startswith("req_")
    assert caught.value.body["error"] == {"type": "authentication_error", "message": "invalid x-api-key"}  # type: ignore[index]

    assert post(fake, "/messages", ask(), {"x-api-key": ""}).status_code == 401
    missing_version = post(fake, "/messages", ask(), {"anthropic-version": ""})
    assert missing_version.status_code == 400 and missing_version.headers["request-id"]
    assert missing_version.json()["error"] == {
        "type": "invalid_request_error",
        "message": "anthropic-version: header is required",
    }
    no_max = post(fake, "/messages", {"model": MODEL, "messages": ask()["messages"]})
    assert no_max.status_code == 400 and no_max.json()["error"]["message"] == "max_tokens: Field required"
    assert post(fake, "/nope", {}).json()["error"]["type"] == "not_found_error"


def test_scripted_overload_and_mid_stream_error(fake: FakeServer, client: Anthropic) -> None:
    fake.enqueue({"status": 529})
    with pytest.raises(anthropic.InternalServerError) as caught:
        client.messages.create(**ask())
    assert caught.value.status_code == 529 and caught.value.type == "overloaded_error"

    fake.enqueue({"overloaded_after_events": 3})
    with pytest.raises(anthropic.APIStatusError) as mid_stream:
        list(client.messages.create(**ask(), stream=True))
    assert mid_stream.value.type == "overloaded_error"
    assert mid_stream.value.body == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}

    fake.enqueue({"delta_delay": 0.1})
    started = time.monotonic()
    assert len(list(client.messages.create(**ask(), stream=True))) == 8
    assert time.monotonic() - started >= 0.3  # three text deltas

    fake.enqueue([{"headers": {"retry-after": "1"}, "text": "scripted"}, {"drop_after_events": 2}])
    raw = client.messages.with_raw_response.create(**ask())
    assert raw.headers["retry-after"] == "1" and raw.parse().content[0].text == "scripted"  # type: ignore[union-attr]
    with pytest.raises(Exception, match="peer closed connection"):
        list(client.messages.create(**ask(), stream=True))
    assert fake.requests()[-1]["script"] == {"drop_after_events": 2}


async def test_async_client(fake: FakeServer) -> None:
    async with AsyncAnthropic(api_key=KEY, base_url=fake.root, max_retries=0) as sdk:
        created = await sdk.messages.create(**ask("async"))
        async with sdk.messages.stream(**ask("async")) as stream:
            streamed = await stream.get_final_message()
    assert created.content[0].type == "text" and created.content[0].text == "Echo (turns=1): async"
    same_shape(streamed, created)


def test_prompt_cache_writes_a_marked_prefix_then_reads_it(client: Anthropic) -> None:
    rules = "Follow the house rules carefully. " * 250  # 1250 words: over the 1024-token minimum
    system: Any = [{"type": "text", "text": rules, "cache_control": {"type": "ephemeral"}}]
    first = client.messages.create(**ask(system=system)).usage
    assert (first.cache_creation_input_tokens, first.cache_read_input_tokens, first.input_tokens) == (1250, 0, 1)
    assert first.cache_creation is not None and first.cache_creation.ephemeral_5m_input_tokens == 1250
    history: Any = [
        {"role": "user", "content": [{"type": "text", "text": "hello", "cache_control": {"type": "ephemeral"}}]},
        {"role": "assistant", "content": "Echo (turns=1): hello"},
        {"role": "user", "content": "again"},
    ]
    second = client.messages.create(**ask(system=system, messages=history)).usage
    # The system prefix is read; the first message (marked, within the lookback) is written; the rest is input.
    assert (second.cache_read_input_tokens, second.cache_creation_input_tokens, second.input_tokens) == (1250, 1, 4)
    short = client.messages.create(**ask(system=[{**system[0], "text": "Be brief."}])).usage
    assert (short.cache_creation_input_tokens, short.cache_read_input_tokens) == (0, 0)  # under the minimum
    automatic = client.messages.create(**ask(system=rules, cache_control={"type": "ephemeral"})).usage
    # a system string is the same prefix as one text block: system + "hello" was written by the second request
    assert (automatic.cache_read_input_tokens, automatic.cache_creation_input_tokens) == (1251, 0)


def test_prompt_cache_marks_are_checked(client: Anthropic) -> None:
    mark: Any = {"type": "ephemeral"}
    system: Any = [{"type": "text", "text": f"rule {i}", "cache_control": mark} for i in range(5)]
    with pytest.raises(anthropic.BadRequestError, match="A maximum of 4 blocks with cache_control"):
        client.messages.create(**ask(system=system))
    empty: Any = [{"role": "user", "content": [{"type": "text", "text": "", "cache_control": mark}]}]
    with pytest.raises(anthropic.BadRequestError, match="empty text blocks"):
        client.messages.create(**ask(messages=empty))
