"""Gateway stages around every call: before may refuse, after sees how the call ended."""

from __future__ import annotations

import asyncio

import pytest

from llmrelay import errors
from llmrelay.gateway import produced
from llmrelay.gateway.prices import Pricing
from llmrelay.gateway.stage import Outcome
from llmrelay.providers.base import Call
from llmrelay.relay import Relay
from llmrelay.streaming.events import Run, StreamEvent


class Recorder:
    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.before_calls: list[str] = []
        self.outcomes: list[Outcome] = []
        self.ended = asyncio.Event()

    async def before(self, call: Call) -> None:
        self.before_calls.append(call.id)
        if self.refuse:
            raise errors.bad_request("over budget", code="budget_exceeded")

    def after(self, call: Call, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        self.ended.set()


def _relay(*stages: object) -> Relay:
    return Relay(store="memory", stages=list(stages))  # type: ignore[arg-type]


MODEL = {"model": "openai/gpt-4o", "mock_response": "one two three four"}


async def test_a_create_is_priced_and_recorded_once() -> None:
    recorder = Recorder()
    relay = _relay(Pricing(), recorder)
    meta: dict[str, object] = {}
    response = await relay.create({**MODEL, "input": "hi there"}, meta=meta)
    assert [o.status for o in recorder.outcomes] == ["completed"]
    assert recorder.outcomes[0].usage == response["usage"]
    assert meta["cost"] == recorder.outcomes[0].cost > 0
    await relay.aclose()


async def test_a_stream_is_charged_on_its_terminal_event() -> None:
    recorder = Recorder()
    relay = _relay(Pricing(), recorder)
    events = await relay.stream({**MODEL, "input": "hi", "stream": True})
    seen = []
    async for event in events:
        seen.append(event.type)
        if event.type == "response.completed":
            assert len(recorder.outcomes) == 1 and recorder.outcomes[0].usage
    assert seen[-1] == "response.completed" and len(recorder.outcomes) == 1
    await relay.aclose()


async def test_a_stream_cut_short_is_still_accounted() -> None:
    recorder = Recorder()
    relay = _relay(recorder)
    events = await relay.stream({**MODEL, "input": "hi there, model", "stream": True})
    async for event in events:
        if event.type == "response.output_text.delta":
            break
    await events.aclose()  # type: ignore[attr-defined]
    assert [o.status for o in recorder.outcomes] == ["cancelled"]
    usage = recorder.outcomes[0].usage or {}  # charged for what it produced: the request, one delta
    assert usage["estimated"] and usage["input_tokens"] == 4 and 0 < usage["output_tokens"] < 4
    await relay.aclose()


async def test_a_background_job_is_charged_when_it_ends() -> None:
    recorder = Recorder()
    relay = _relay(Pricing(), recorder)
    queued = await relay.create({**MODEL, "input": "hi", "background": True})
    assert queued["status"] == "queued"
    await asyncio.wait_for(recorder.ended.wait(), 10)
    assert [o.status for o in recorder.outcomes] == ["completed"] and recorder.outcomes[0].cost > 0
    await relay.aclose()


async def test_a_refusal_stops_the_call_before_anything_runs() -> None:
    refuser, later = Recorder(refuse=True), Recorder()
    relay = _relay(refuser, later)
    with pytest.raises(errors.BadRequestError):
        await relay.create({**MODEL, "input": "hi"})
    assert later.before_calls == [] and [o.status for o in refuser.outcomes] == []
    assert relay.jobs.running("x") is False
    await relay.aclose()


def test_what_a_call_produced_is_estimated_from_its_text_not_its_payloads() -> None:
    image = {"type": "input_image", "image_url": "data:image/png;base64," + "A" * 4000}
    message = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "x" * 40}, image]}
    assert produced.text_chars([message]) == 40
    counter = produced.OutputCounter()
    counter.see(StreamEvent("response.output_text.delta", {"delta": "y" * 10}))  # translated: its characters
    counter.see(StreamEvent("response.output_text.delta", raw=b'{"delta":"yy"}'))  # native, unparsed: a token
    counter.see(StreamEvent("response.output_audio.delta", {"delta": "A" * 400}))  # audio: not text tokens
    counter.see(Run(b"...", events=3, tokens=3))  # native frames forwarded in one piece: a token each
    assert counter.tokens == 10 / 4 + 1 + 3
    # what counts as output (the time to first token starts there): deltas, and runs holding some
    assert not counter.see(StreamEvent("response.created", {"type": "response.created"}))
    assert not counter.see(Run(b"...", events=2, tokens=0))
    assert counter.see(StreamEvent("response.output_audio.delta", {"delta": "A"}))
