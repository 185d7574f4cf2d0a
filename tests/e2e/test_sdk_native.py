"""The SDK against a real fake OpenAI Responses server, sync and async."""

from __future__ import annotations

import time

import openai
import pytest
from openai.types.responses import Response, ResponseCompletedEvent, ResponseTextDeltaEvent

import llmrelay
from tests.conftest import SDK
from tests.fakes.process import FakeServer

KEY = "sk-test"


def native(fake: FakeServer, **extra: object) -> dict:
    return {"model": "openai/o1-pro", "api_key": KEY, "api_base": fake.url, **extra}


async def test_create_returns_an_openai_response(sdk: SDK, upstream: FakeServer) -> None:
    r = await sdk.create(**native(upstream), input="Tell me a story.", max_output_tokens=100)
    assert isinstance(r, Response)
    assert r.output_text == "Echo (turns=1): Tell me a story."
    assert r.id.startswith("resp_")
    (req,) = upstream.requests()
    assert req["headers"]["authorization"] == f"Bearer {KEY}"
    assert req["body"] == {"model": "o1-pro", "input": "Tell me a story.", "max_output_tokens": 100}


async def test_every_field_reaches_the_upstream_unchanged(sdk: SDK, upstream: FakeServer) -> None:
    fields = {
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "Check the news."}]}],
        "instructions": "Be brief.",
        "tools": [{"type": "computer_use_preview", "display_width": 1024, "display_height": 768,
                   "environment": "browser"}],
        "tool_choice": "auto", "text": {"format": {"type": "text"}, "verbosity": "low"},
        "reasoning": {"summary": "concise"}, "include": ["reasoning.encrypted_content"], "truncation": "auto",
        "metadata": {"team": "a"}, "parallel_tool_calls": False, "store": True, "temperature": 0.2,
        "top_p": 0.9, "user": "u-1", "service_tier": "auto", "prompt_cache_key": "pck",
        "safety_identifier": "sid", "max_tool_calls": 4, "top_logprobs": 2, "max_output_tokens": 50,
    }  # fmt: skip
    r = await sdk.create(
        **native(upstream),
        **fields,
        extra_body={"vendor_flag": True},
        extra_headers={"x-trace": "t-1"},
        timeout=30,
    )
    assert r.output[-1].type == "computer_call"
    (req,) = upstream.requests()
    assert req["body"] == {"model": "o1-pro", **fields, "vendor_flag": True}
    assert req["headers"]["x-trace"] == "t-1"


async def test_stream_is_typed_ordered_and_stored_before_the_terminal_event(sdk: SDK, upstream: FakeServer) -> None:
    events = await sdk.stream(**native(upstream), input="Stream please.")
    types = [e.type for e in events]
    assert types[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert types[-1] == "response.completed"
    seqs = [e.sequence_number for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    deltas = [e for e in events if isinstance(e, ResponseTextDeltaEvent)]
    assert "".join(d.delta for d in deltas) == "Echo (turns=1): Stream please."
    final = events[-1]
    assert isinstance(final, ResponseCompletedEvent)
    assert events[0].response.id == final.response.id
    got = await sdk.get(final.response.id)
    assert got.output_text == final.response.output_text


async def test_store_is_written_before_the_terminal_event_is_yielded(upstream: FakeServer, relay) -> None:
    stream = await llmrelay.aresponses(stream=True, relay=relay, **native(upstream), input="x")
    async for event in stream:
        if event.type == "response.completed":
            # still inside the stream: the record must already be there
            assert (await llmrelay.aget_responses(event.response.id, relay=relay)).status == "completed"


async def test_get_delete_then_404(sdk: SDK, upstream: FakeServer) -> None:
    r = await sdk.create(**native(upstream), input="keep me")
    assert (await sdk.get(r.id)).output_text == r.output_text
    deleted = await sdk.delete(r.id)
    assert deleted.model_dump() == {"id": r.id, "object": "response.deleted", "deleted": True}
    with pytest.raises(openai.NotFoundError):
        await sdk.get(r.id)
    with pytest.raises(llmrelay.NotFoundError):
        await sdk.delete(r.id)


async def test_store_false_keeps_nothing(sdk: SDK, upstream: FakeServer) -> None:
    r = await sdk.create(**native(upstream), input="forget me", store=False)
    with pytest.raises(openai.NotFoundError):
        await sdk.get(r.id)


async def test_list_input_items_pages(sdk: SDK, upstream: FakeServer) -> None:
    turns = [{"role": "user", "content": f"m{i}"} for i in range(5)]
    r = await sdk.create(**native(upstream), input=turns)
    first = await sdk.items(r.id, limit=2)
    assert first.object == "list" and first.has_more
    assert [i.content[0].text for i in first.data] == ["m4", "m3"]
    second = await sdk.items(r.id, limit=2, after=first.last_id)
    assert [i.content[0].text for i in second.data] == ["m2", "m1"]
    asc = await sdk.items(r.id, order="asc", before=first.data[0].id)
    assert [i.content[0].text for i in asc.data] == ["m0", "m1", "m2", "m3"] and not asc.has_more


async def test_previous_response_id_on_the_same_deployment_uses_the_upstream_id(sdk: SDK, upstream: FakeServer) -> None:
    first = await sdk.create(**native(upstream), input="one")
    second = await sdk.create(**native(upstream), input="two", previous_response_id=first.id)
    assert second.output_text == "Echo (turns=2): two"
    assert second.previous_response_id == first.id
    reqs = upstream.requests()
    upstream_first_id = reqs[0]["body"] and reqs[1]["body"]["previous_response_id"]
    assert upstream_first_id != first.id and upstream_first_id.startswith("resp_")
    assert reqs[1]["body"]["input"] == "two"


async def test_previous_response_id_across_upstreams_replays_the_history(
    sdk: SDK, upstream: FakeServer, openai_fake_b: FakeServer
) -> None:
    openai_fake_b.reset()
    first = await sdk.create(**native(upstream), input="one", instructions="only for turn 1")
    second = await sdk.create(**native(openai_fake_b), input="two", previous_response_id=first.id)
    assert second.output_text == "Echo (turns=2): two"
    (req,) = openai_fake_b.requests()
    body = req["body"]
    assert "previous_response_id" not in body and "instructions" not in body
    texts = [(i.get("role"), i["content"][0]["text"]) for i in body["input"]]
    assert texts == [("user", "one"), ("assistant", "Echo (turns=1): one"), ("user", "two")]
    assert all("id" not in i for i in body["input"])
    # and a third turn back on A continues B's response through the store
    third = await sdk.create(**native(upstream), input="three", previous_response_id=second.id)
    assert third.output_text == "Echo (turns=3): three"


async def test_an_upstream_that_lost_its_state_gets_the_history_replayed(sdk: SDK, upstream: FakeServer) -> None:
    first = await sdk.create(**native(upstream), input="one")
    upstream.reset()  # the upstream forgets every stored response
    second = await sdk.create(**native(upstream), input="two", previous_response_id=first.id)
    assert second.output_text == "Echo (turns=2): two"
    assert [r["body"].get("previous_response_id") is not None for r in upstream.requests()] == [True, False]


async def test_unknown_previous_response_id_is_a_400(sdk: SDK, upstream: FakeServer) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        await sdk.create(**native(upstream), input="x", previous_response_id="resp_missing")
    assert exc.value.code == "previous_response_not_found"
    assert upstream.requests() == []


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (403, openai.PermissionDeniedError),
        (404, openai.NotFoundError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
async def test_upstream_errors_map_to_openai_exceptions(sdk: SDK, upstream: FakeServer, status: int, cls: type) -> None:
    upstream.enqueue({"status": status, "headers": {"retry-after": "7"}})
    with pytest.raises(cls) as exc:
        await sdk.create(**native(upstream), input="x")
    assert exc.value.status_code == status
    assert isinstance(exc.value, llmrelay.APIStatusError)
    if status == 429:
        assert exc.value.response.headers["retry-after"] == "7"


async def test_bad_key_is_an_authentication_error(sdk: SDK, upstream: FakeServer) -> None:
    with pytest.raises(openai.AuthenticationError) as exc:
        await sdk.create(**native(upstream, api_key="bad-key"), input="x")
    assert exc.value.code == "invalid_api_key"


async def test_missing_fields_fail_before_any_network_call(sdk: SDK, upstream: FakeServer) -> None:
    with pytest.raises(openai.BadRequestError, match="'input'"):
        await sdk.create(**native(upstream))
    with pytest.raises(openai.BadRequestError, match="'model'"):
        await sdk.create(api_key=KEY, api_base=upstream.url, input="x")
    assert upstream.requests() == []


async def test_connection_and_timeout_errors(sdk: SDK, upstream: FakeServer) -> None:
    with pytest.raises(openai.APIConnectionError):
        await sdk.create(model="openai/m", api_key=KEY, api_base="http://127.0.0.1:9/v1", input="x")
    upstream.enqueue({"delay": 3})
    with pytest.raises(openai.APITimeoutError):
        await sdk.create(**native(upstream), input="x", timeout=0.5)


async def test_retries_honour_retry_after(sdk: SDK, upstream: FakeServer) -> None:
    upstream.enqueue({"status": 429, "headers": {"retry-after": "0.6"}})
    upstream.enqueue({"status": 503, "headers": {"retry-after": "0"}})
    started = time.monotonic()
    r = await sdk.create(**native(upstream), input="again", num_retries=2)
    assert r.output_text == "Echo (turns=1): again"
    assert len(upstream.requests()) == 3
    assert time.monotonic() - started >= 0.6
    upstream.enqueue([{"status": 500, "headers": {"retry-after": "0"}}] * 2)
    with pytest.raises(openai.InternalServerError):
        await sdk.create(**native(upstream), input="x", num_retries=1)


async def test_mock_response_needs_no_network(sdk: SDK) -> None:
    r = await sdk.create(model="openai/o1-pro", input="hi", mock_response="Mocked!")
    assert r.output_text == "Mocked!" and r.status == "completed"
    events = await sdk.stream(model="openai/o1-pro", input="hi", mock_response="Mocked stream")
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text == "Mocked stream"


async def test_background_then_poll_and_cancel(sdk: SDK, upstream: FakeServer) -> None:
    r = await sdk.create(**native(upstream), input="slow job", background=True)
    assert r.status in ("queued", "in_progress")
    for _ in range(50):
        got = await sdk.get(r.id)
        if got.status == "completed":
            break
        time.sleep(0.05)
    assert got.status == "completed" and got.output_text == "Echo (turns=1): slow job"
    upstream.enqueue({"background_delay": 30})
    job = await sdk.create(**native(upstream), input="cancel me", background=True)
    cancelled = await sdk.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.id == job.id
    assert (await sdk.get(job.id)).status == "cancelled"
    assert (await sdk.cancel(job.id)).status == "cancelled"  # twice: same answer
    plain = await sdk.create(**native(upstream), input="not background")
    with pytest.raises(openai.BadRequestError):
        await sdk.cancel(plain.id)


async def test_a_failure_mid_stream_ends_the_stream_cleanly(sdk: SDK, upstream: FakeServer) -> None:
    upstream.enqueue({"fail_after_events": 4})
    events = await sdk.stream(**native(upstream), input="x")
    assert events[-1].type == "error"
    upstream.enqueue({"drop_after_events": 4})
    events = await sdk.stream(**native(upstream), input="x")
    assert events[-1].type == "response.failed"
    assert events[-1].response.status == "failed"
    assert (await sdk.get(events[-1].response.id)).status == "failed"


async def test_sync_and_async_give_the_same_output(relay, upstream: FakeServer) -> None:
    params = native(upstream, input=[{"role": "user", "content": "same?"}], tools=[
        {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}])  # fmt: skip
    a = llmrelay.responses(relay=relay, **params)
    b = await llmrelay.aresponses(relay=relay, **params)

    def shape(r: Response) -> list:
        return [{k: v for k, v in item.model_dump().items() if k not in ("id", "call_id")} for item in r.output]

    assert shape(a) == shape(b)
    assert a.output[0].type == "function_call"
