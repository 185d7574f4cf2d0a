"""The fake OpenAI upstream, driven by the official SDK: if the SDK is happy, the wire format is right."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI, OpenAI
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseComputerToolCall,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseErrorEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseFunctionToolCall,
    ResponseIncompleteEvent,
    ResponseInProgressEvent,
    ResponseItemList,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseReasoningItem,
    ResponseReasoningSummaryPartAddedEvent,
    ResponseReasoningSummaryPartDoneEvent,
    ResponseReasoningSummaryTextDeltaEvent,
    ResponseReasoningSummaryTextDoneEvent,
    ResponseStreamEvent,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
)
from pydantic import TypeAdapter

from tests.fakes import FakeServer, start_fake

MODEL = "gpt-4o-mini"
KEY = "sk-test"
EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
FUNCTION_TOOL = {
    "type": "function",
    "name": "lookup",
    "description": "Look something up.",
    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
}
COMPUTER_TOOL = {"type": "computer_use_preview", "display_width": 1024, "display_height": 768, "environment": "browser"}
MESSAGE_EVENTS = [
    ResponseOutputItemAddedEvent,
    ResponseContentPartAddedEvent,
    *[ResponseTextDeltaEvent] * 3,  # "Echo ", "(turns=1): ", "hello"
    ResponseTextDoneEvent,
    ResponseContentPartDoneEvent,
    ResponseOutputItemDoneEvent,
]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeServer]:
    with start_fake(background_delay=0.3) as server:
        yield server


@pytest.fixture(autouse=True)
def fresh(fake: FakeServer) -> None:
    fake.reset()


@pytest.fixture
def client(fake: FakeServer) -> Iterator[OpenAI]:
    with OpenAI(api_key=KEY, base_url=fake.url, max_retries=0) as sdk:
        yield sdk


def http(method: str, url: str, body: Any = None, *, raw: bytes | None = None, key: str | None = KEY) -> Reply:
    """A plain HTTP call, to see exactly what is on the wire."""
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with NO_PROXY.open(request, timeout=10) as response:
            return Reply(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())


def raw_sse(fake: FakeServer, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) pairs exactly as they come off the wire."""
    reply = http("POST", f"{fake.url}/responses", {**body, "stream": True})
    assert reply.headers["content-type"] == "text/event-stream; charset=utf-8"
    frames = []
    for block in reply.body.decode().split("\n\n"):
        if block:
            name, data = block.split("\n")
            frames.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return frames


@dataclass
class Reply:
    status_code: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def unparsed(value: Any) -> Any:
    """Drop the ``parsed`` fields the stream helper adds to its ParsedResponse."""
    if isinstance(value, dict):
        return {k: unparsed(v) for k, v in value.items() if k != "parsed"}
    if isinstance(value, list):
        return [unparsed(v) for v in value]
    return value


def test_create_echoes_the_last_user_message(fake: FakeServer, client: OpenAI) -> None:
    raw = client.responses.with_raw_response.create(model=MODEL, input="hello", instructions="Be brief.")
    response = raw.parse()
    assert raw.headers["x-request-id"].startswith("req_")
    Response.model_validate(raw.http_response.json())  # strict: every required field, right types
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.status == "completed" and response.model == MODEL
    assert response.output_text == "Echo (turns=1): hello"
    assert response.instructions == "Be brief." and response.store is True
    assert (
        response.usage is not None
        and response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    )
    assert response.usage.input_tokens_details.cached_tokens == 0
    message = response.output[0]
    assert isinstance(message, ResponseOutputMessage) and message.id.startswith("msg_")
    (recorded,) = fake.requests()
    assert recorded["method"] == "POST" and recorded["path"] == "/v1/responses"
    assert recorded["body"] == {"model": MODEL, "input": "hello", "instructions": "Be brief."}
    assert recorded["headers"]["authorization"] == f"Bearer {KEY}"


def test_input_item_list_and_image_parts(client: OpenAI) -> None:
    response = client.responses.create(
        model=MODEL,
        input=[
            {"role": "developer", "content": "You echo."},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "what is"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "auto"},
                    {"type": "input_text", "text": "this?"},
                ],
            },
        ],
    )
    assert response.output_text == "Echo (turns=2): what is this?"


def test_stream_is_typed_ordered_and_numbered(fake: FakeServer, client: OpenAI) -> None:
    events = list(client.responses.create(model=MODEL, input="hello", stream=True))
    expected = [ResponseCreatedEvent, ResponseInProgressEvent, *MESSAGE_EVENTS, ResponseCompletedEvent]
    assert [type(e) for e in events] == expected
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if isinstance(e, ResponseTextDeltaEvent)]
    assert "".join(deltas) == "Echo (turns=1): hello"
    completed = events[-1]
    assert isinstance(completed, ResponseCompletedEvent) and completed.response.output_text == "Echo (turns=1): hello"
    assert events[0].response.status == "in_progress" and events[0].response.output == []

    # On the wire: the SSE event name repeats the type, and every payload validates strictly.
    frames = raw_sse(fake, {"model": MODEL, "input": "hello"})
    for name, data in frames:
        assert name == data["type"]
        EVENTS.validate_python(data)
    final = frames[-1][1]["response"]
    stored = client.responses.retrieve(final["id"])
    assert stored.to_dict() == final


def test_stream_helper_final_response_matches_retrieve(client: OpenAI) -> None:
    with client.responses.stream(model=MODEL, input="stream me") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == final.output_text == "Echo (turns=1): stream me"
    retrieved = client.responses.retrieve(final.id)
    assert unparsed(final.to_dict()) == retrieved.to_dict()


@pytest.mark.asyncio
async def test_async_stream_arrives_incrementally(fake: FakeServer) -> None:
    fake.enqueue({"delta_delay": 0.1})
    async with AsyncOpenAI(api_key=KEY, base_url=fake.url, max_retries=0) as sdk:
        stream = await sdk.responses.create(model=MODEL, input="slow words here", stream=True)
        arrivals: dict[str, float] = {}
        async for event in stream:
            arrivals.setdefault(event.type, time.monotonic())
    # Five deltas 0.1 s apart: the first one must arrive well before the end.
    assert arrivals["response.completed"] - arrivals["response.output_text.delta"] >= 0.3


@pytest.mark.asyncio
async def test_async_create_and_chain(fake: FakeServer) -> None:
    async with AsyncOpenAI(api_key=KEY, base_url=fake.url, max_retries=0) as sdk:
        first = await sdk.responses.create(model=MODEL, input="one")
        second = await sdk.responses.create(model=MODEL, input="two", previous_response_id=first.id)
    assert second.output_text == "Echo (turns=2): two"
    assert second.previous_response_id == first.id


def test_function_call_round_trip(client: OpenAI) -> None:
    call = client.responses.create(model=MODEL, input="weather in Paris", tools=[FUNCTION_TOOL])
    (item,) = call.output
    assert isinstance(item, ResponseFunctionToolCall)
    assert item.name == "lookup" and item.id and item.id.startswith("fc_") and item.call_id.startswith("call_")
    assert json.loads(item.arguments) == {"q": "weather in Paris"}
    assert call.tools[0].type == "function" and call.tools[0].strict is True

    answer = client.responses.create(
        model=MODEL,
        previous_response_id=call.id,
        input=[{"type": "function_call_output", "call_id": item.call_id, "output": "sunny"}],
        tools=[FUNCTION_TOOL],
    )
    assert answer.output_text == "Echo (turns=1): tool said sunny"

    # Like OpenAI: a pending call must be answered, and an output needs its call.
    with pytest.raises(openai.BadRequestError, match="No tool output found for function call"):
        client.responses.create(model=MODEL, previous_response_id=call.id, input="never mind")
    with pytest.raises(openai.BadRequestError, match="No tool call found"):
        client.responses.create(
            model=MODEL, input=[{"type": "function_call_output", "call_id": "call_x", "output": "?"}]
        )


def test_function_call_stream(client: OpenAI) -> None:
    events = list(client.responses.create(model=MODEL, input="a b", tools=[FUNCTION_TOOL], stream=True))
    deltas = [e for e in events if isinstance(e, ResponseFunctionCallArgumentsDeltaEvent)]
    (done,) = [e for e in events if isinstance(e, ResponseFunctionCallArgumentsDoneEvent)]
    assert "".join(d.delta for d in deltas) == done.arguments == json.dumps({"q": "a b"})
    added = next(e for e in events if isinstance(e, ResponseOutputItemAddedEvent))
    assert isinstance(added.item, ResponseFunctionToolCall) and added.item.arguments == ""
    assert added.item.status == "in_progress"


def test_computer_call_loop(client: OpenAI) -> None:
    first = client.responses.create(
        model="computer-use-preview", input="open example.com", tools=[COMPUTER_TOOL], truncation="auto"
    )
    (call,) = first.output
    assert isinstance(call, ResponseComputerToolCall)
    assert call.action is not None and call.action.type == "screenshot" and call.pending_safety_checks
    assert call.status == "completed"
    screenshot = {
        "type": "computer_call_output",
        "call_id": call.call_id,
        "acknowledged_safety_checks": [c.to_dict() for c in call.pending_safety_checks],
        "output": {"type": "computer_screenshot", "image_url": "data:image/png;base64,AAAA"},
    }
    seen = client.responses.create(
        model="computer-use-preview", previous_response_id=first.id, input=[screenshot], tools=[COMPUTER_TOOL]
    )
    (click,) = seen.output
    assert isinstance(click, ResponseComputerToolCall) and click.action is not None
    assert click.action.to_dict() == {"type": "click", "button": "left", "x": 100, "y": 200}
    typed = client.responses.create(
        model="computer-use-preview", previous_response_id=seen.id, tools=[COMPUTER_TOOL],
        input=[{**screenshot, "call_id": click.call_id}],
    )  # fmt: skip
    assert typed.output[0].action.to_dict() == {"type": "type", "text": "hello"}
    done = client.responses.create(
        model="computer-use-preview", previous_response_id=typed.id, tools=[COMPUTER_TOOL],
        input=[{**screenshot, "call_id": typed.output[0].call_id}],
    )  # fmt: skip
    assert done.output_text == "Echo (turns=1): tool said computer_screenshot"
    again = client.responses.create(
        model="computer-use-preview", previous_response_id=done.id, input="click it", tools=[COMPUTER_TOOL]
    )
    assert again.output[0].action.type == "screenshot"  # a new user turn starts a new session


def test_reasoning_summary_and_encrypted_content(fake: FakeServer, client: OpenAI) -> None:
    body: dict[str, Any] = {
        "model": "o4-mini",
        "input": "think",
        "reasoning": {"effort": "low", "summary": "auto"},
        "include": ["reasoning.encrypted_content"],
    }
    response = client.responses.create(**body)
    reasoning, _message = response.output
    assert isinstance(reasoning, ResponseReasoningItem) and reasoning.id.startswith("rs_")
    assert reasoning.summary[0].text.endswith("think")
    assert reasoning.encrypted_content and reasoning.encrypted_content.startswith("gAAAA")
    assert response.reasoning is not None and response.reasoning.effort == "low"
    assert response.usage is not None and response.usage.output_tokens_details.reasoning_tokens > 0
    assert response.output_text == "Echo (turns=1): think"

    types = [type(e) for e in client.responses.create(**body, stream=True)]
    summary_events = [
        ResponseOutputItemAddedEvent,
        ResponseReasoningSummaryPartAddedEvent,
        *[ResponseReasoningSummaryTextDeltaEvent] * 5,  # "**Echoing** The user said: think"
        ResponseReasoningSummaryTextDoneEvent,
        ResponseReasoningSummaryPartDoneEvent,
        ResponseOutputItemDoneEvent,
    ]
    assert types[2 : 2 + len(summary_events)] == summary_events


def test_previous_response_chain(client: OpenAI) -> None:
    first = client.responses.create(model=MODEL, input="hi")
    second = client.responses.create(model=MODEL, input="again", previous_response_id=first.id)
    assert second.output_text == "Echo (turns=2): again"
    assert second.usage is not None and second.usage.input_tokens_details.cached_tokens > 0
    with pytest.raises(openai.BadRequestError) as error:
        client.responses.create(model=MODEL, input="x", previous_response_id="resp_missing")
    assert error.value.code == "previous_response_not_found" and error.value.param == "previous_response_id"
    assert error.value.message.endswith("Previous response with id 'resp_missing' not found.")
    unstored = client.responses.create(model=MODEL, input="forget me", store=False)
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model=MODEL, input="x", previous_response_id=unstored.id)


def test_retrieve_and_delete(client: OpenAI) -> None:
    created = client.responses.create(model=MODEL, input="keep", metadata={"k": "v"})
    assert client.responses.retrieve(created.id).to_dict() == created.to_dict()
    assert client.responses.delete(created.id) is None
    with pytest.raises(openai.NotFoundError) as error:
        client.responses.retrieve(created.id)
    assert f"No response found with id '{created.id}'." in error.value.message
    assert error.value.code is None


def test_delete_answer_shape(fake: FakeServer, client: OpenAI) -> None:
    created = client.responses.create(model=MODEL, input="bye")
    answer = http("DELETE", f"{fake.url}/responses/{created.id}")
    assert answer.json() == {"id": created.id, "object": "response.deleted", "deleted": True}


def test_input_items_pagination(fake: FakeServer, client: OpenAI) -> None:
    first = client.responses.create(model=MODEL, input="one")
    second = client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=[{"role": "user", "content": "two"}, {"role": "user", "content": "three"}],
    )
    page = client.responses.input_items.list(second.id, limit=2)
    assert [item.type for item in page.data] == ["message", "message"] and page.has_more
    assert page.first_id == page.data[0].id and page.last_id == page.data[1].id
    everything = list(client.responses.input_items.list(second.id, limit=2))  # follows the cursor
    assert len(everything) == 4
    roles = [item.role for item in everything]  # type: ignore[union-attr]
    assert roles == ["user", "user", "assistant", "user"]  # desc: newest first
    ascending = client.responses.input_items.list(second.id, order="asc")
    assert [i.id for i in ascending.data] == [i.id for i in reversed(everything)] and not ascending.has_more
    after = client.responses.input_items.list(second.id, order="asc", after=ascending.data[0].id, limit=1)
    assert [i.id for i in after.data] == [ascending.data[1].id]
    ResponseItemList.model_validate(http("GET", f"{fake.url}/responses/{second.id}/input_items").json())


def test_background_completes_and_cancel(fake: FakeServer, client: OpenAI) -> None:
    queued = client.responses.create(model=MODEL, input="later", background=True)
    assert queued.status == "queued" and queued.background is True and queued.output == []
    deadline = time.monotonic() + 3
    while (current := client.responses.retrieve(queued.id)).status != "completed":
        assert time.monotonic() < deadline and current.status in ("queued", "in_progress")
        time.sleep(0.05)
    assert current.output_text == "Echo (turns=1): later"

    fake.enqueue({"background_delay": 30})  # cannot finish before the cancel, however slow the machine
    doomed = client.responses.create(model=MODEL, input="never", background=True)
    cancelled = client.responses.cancel(doomed.id)
    assert cancelled.status == "cancelled" and cancelled.output == []
    assert client.responses.retrieve(doomed.id).status == "cancelled"
    assert client.responses.cancel(doomed.id).status == "cancelled"  # idempotent, like OpenAI

    foreground = client.responses.create(model=MODEL, input="now")
    with pytest.raises(openai.BadRequestError, match="Only responses created with background=true can be cancelled"):
        client.responses.cancel(foreground.id)


def test_background_stream_and_replay(client: OpenAI) -> None:
    events = list(client.responses.create(model=MODEL, input="hello", background=True, stream=True))
    assert [e.type for e in events[:3]] == ["response.created", "response.queued", "response.in_progress"]
    assert events[0].response.status == "queued"  # type: ignore[union-attr]
    final = events[-1].response  # type: ignore[union-attr]
    replay = list(client.responses.retrieve(final.id, stream=True, starting_after=2))
    assert [e.sequence_number for e in replay] == [e.sequence_number for e in events[3:]]


def test_authentication_errors(fake: FakeServer) -> None:
    with (
        OpenAI(api_key="bad-key", base_url=fake.url, max_retries=0) as sdk,
        pytest.raises(openai.AuthenticationError) as error,
    ):
        sdk.responses.create(model=MODEL, input="hi")
    assert error.value.code == "invalid_api_key" and "Incorrect API key provided: bad-key" in error.value.message
    missing = http("POST", f"{fake.url}/responses", {"model": MODEL, "input": "hi"}, key=None)
    assert missing.status_code == 401
    assert set(missing.json()["error"]) == {"message", "type", "param", "code"}


def test_bad_requests_keep_openai_error_shape(fake: FakeServer) -> None:
    malformed = http("POST", f"{fake.url}/responses", raw=b"{nope")
    assert malformed.status_code == 400 and "could not parse the JSON body" in malformed.json()["error"]["message"]
    no_model = http("POST", f"{fake.url}/responses", {"input": "hi"})
    assert no_model.status_code == 400 and no_model.json()["error"]["param"] == "model"
    unknown = http("GET", f"{fake.url}/models/nope")
    assert unknown.status_code == 404
    assert unknown.json() == {
        "error": {
            "message": "Invalid URL (GET /v1/models/nope)",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }


def test_enqueued_rate_limit_then_normal(fake: FakeServer, client: OpenAI) -> None:
    fake.enqueue({"status": 429, "headers": {"retry-after": "0"}})
    with pytest.raises(openai.RateLimitError) as error:
        client.responses.create(model=MODEL, input="hi")
    assert error.value.response.headers["retry-after"] == "0" and error.value.code == "rate_limit_exceeded"
    assert client.responses.create(model=MODEL, input="hi").output_text == "Echo (turns=1): hi"
    assert len(fake.requests()) == 2


def test_enqueued_delay_and_text(fake: FakeServer, client: OpenAI) -> None:
    fake.enqueue({"delay": 0.2, "text": "scripted answer"})
    started = time.monotonic()
    response = client.responses.create(model=MODEL, input="hi")
    assert time.monotonic() - started >= 0.2 and response.output_text == "scripted answer"


def test_incomplete_when_max_output_tokens_is_too_small(client: OpenAI) -> None:
    response = client.responses.create(model=MODEL, input="one two three", max_output_tokens=3)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "Echo (turns=1): one"
    events = list(client.responses.create(model=MODEL, input="one two three", max_output_tokens=3, stream=True))
    assert isinstance(events[-1], ResponseIncompleteEvent) and events[-1].response.output_text == response.output_text


def test_stream_fail_and_drop(fake: FakeServer, client: OpenAI) -> None:
    fake.enqueue({"fail_after_events": 3})
    events = list(client.responses.create(model=MODEL, input="hello", stream=True))
    assert len(events) == 4 and isinstance(events[-1], ResponseErrorEvent)
    assert events[-1].code == "server_error" and events[-1].sequence_number == 3
    failed = client.responses.retrieve(events[0].response.id)  # type: ignore[union-attr]
    assert failed.status == "failed" and failed.error is not None and failed.error.code == "server_error"

    fake.enqueue({"drop_after_events": 3})
    seen: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        for event in client.responses.create(model=MODEL, input="hello", stream=True):
            seen.append(event.type)
    assert len(seen) == 3

    fake.enqueue({"drop_after_events": 0})
    with pytest.raises(openai.APIConnectionError):
        client.responses.create(model=MODEL, input="hello")
    fake.enqueue({"fail_after_events": 0})
    with pytest.raises(openai.InternalServerError):
        client.responses.create(model=MODEL, input="hello")


def test_client_disconnect_is_recorded(fake: FakeServer, client: OpenAI) -> None:
    fake.enqueue({"delta_delay": 0.2})
    with client.responses.create(model=MODEL, input="a b c d e f", stream=True) as stream:
        next(iter(stream))
    deadline = time.monotonic() + 3
    while not fake.requests()[-1].get("disconnected"):
        assert time.monotonic() < deadline, "the fake never noticed the disconnect"
        time.sleep(0.05)
