"""`llmrelay.Router`: the proxy's routing for SDK callers, sync and async, on fake upstreams."""

from __future__ import annotations

from typing import Any

import openai
import pytest

import llmrelay
from tests.fakes.process import FakeServer, free_port

TEXT = "one two three four five six"


def deployment(name: str, model: str, fake: FakeServer, dep_id: str, **params: Any) -> dict[str, Any]:
    litellm_params = {"model": model, "api_key": "test-key", "api_base": fake.url, **params}
    return {"model_name": name, "litellm_params": litellm_params, "model_info": {"id": dep_id}}


@pytest.fixture
def fakes(openai_fake: FakeServer, openai_fake_b: FakeServer, anthropic_fake: FakeServer) -> tuple[FakeServer, ...]:
    for fake in (openai_fake, openai_fake_b, anthropic_fake):
        fake.reset()
    return openai_fake, openai_fake_b, anthropic_fake


def router(fakes: tuple[FakeServer, ...], **settings: Any) -> llmrelay.Router:
    a, b, claude = fakes
    model_list = [
        deployment("gpt", "openai/gpt-4o", a, "a", order=1),
        deployment("gpt", "openai/gpt-4o", b, "b", order=2),
        deployment("claude", "anthropic/claude-sonnet-4-5", claude, "c"),
    ]
    return llmrelay.Router(model_list=model_list, store="memory", **settings)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_retries_then_fallbacks_through_the_sdk(fakes: tuple[FakeServer, ...], mode: str) -> None:
    a, b, claude = fakes
    a.enqueue({"status": 429, "headers": {"retry-after": "30"}})
    b.enqueue({"status": 500})
    r = router(fakes, num_retries=1, fallbacks=[{"gpt": ["claude"]}])
    if mode == "sync":
        response = r.responses(model="gpt", input="hello")
        again = r.get_responses(response.id)
    else:
        response = await r.aresponses(model="gpt", input="hello")
        again = await r.aget_responses(response.id)
    assert isinstance(response, openai.types.responses.Response)
    assert response.output_text == "Echo (turns=1): hello" and response.model == "claude-sonnet-4-5"
    assert again.output_text == response.output_text
    assert (len(a.requests()), len(b.requests()), len(claude.requests())) == (1, 1, 1)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_broken_stream_goes_on_at_the_fallback_through_the_sdk(
    fakes: tuple[FakeServer, ...], mode: str
) -> None:
    a, _, claude = fakes
    a.enqueue({"text": TEXT, "drop_after_events": 6})
    claude.enqueue({"text": "done."})
    r = router(fakes, fallbacks=[{"gpt": ["claude"]}])
    if mode == "sync":
        events = list(r.responses(model="gpt", input="count", stream=True))
    else:
        events = [e async for e in await r.aresponses(model="gpt", input="count", stream=True)]
    types = [e.type for e in events]
    assert types.count("response.created") == 1 and types[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response
    assert final.output_text.endswith("done.") and TEXT.startswith(final.output_text.removesuffix("done."))
    stored = await r.aget_responses(final.id) if mode == "async" else r.get_responses(final.id)
    assert stored.output == final.output and stored.usage == final.usage


FAILURES = {
    "429": {"status": 429, "headers": {"retry-after": "30"}},
    "500": {"status": 500},
    "529": {"status": 529, "body": {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}},
    "cut": {"abort": True},
    "hang": {"hang": True},
}


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("failure", list(FAILURES))
async def test_each_failure_moves_on_to_the_next_deployment_through_the_sdk(
    fakes: tuple[FakeServer, ...], failure: str, mode: str
) -> None:
    a, b, _ = fakes
    a.enqueue(FAILURES[failure])
    r = router(fakes, num_retries=1, timeout=2)  # a hang ends at the timeout, then b answers
    response = r.responses(model="gpt", input="hi") if mode == "sync" else await r.aresponses(model="gpt", input="hi")
    assert response.output_text == "Echo (turns=1): hi"
    assert len(a.requests()) == 1 and len(b.requests()) == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_context_overflow_takes_the_context_window_fallback_through_the_sdk(
    fakes: tuple[FakeServer, ...], mode: str
) -> None:
    a, b, claude = fakes
    error = {
        "message": "too long",
        "type": "invalid_request_error",
        "param": "input",
        "code": "context_length_exceeded",
    }
    a.enqueue({"status": 400, "body": {"error": error}})
    r = router(fakes, context_window_fallbacks=[{"gpt": ["claude"]}])
    response = (
        r.responses(model="gpt", input="long") if mode == "sync" else await r.aresponses(model="gpt", input="long")
    )
    assert response.model == "claude-sonnet-4-5" and len(claude.requests()) == 1
    assert len(b.requests()) == 0  # an overflow is not retried within the group


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_refused_connection_moves_on_through_the_sdk(fakes: tuple[FakeServer, ...], mode: str) -> None:
    _, b, _ = fakes
    dead = deployment("gpt", "openai/gpt-4o", b, "dead", order=1)
    dead["litellm_params"]["api_base"] = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    r = llmrelay.Router(
        model_list=[dead, deployment("gpt", "openai/gpt-4o", b, "b", order=2)], store="memory", num_retries=1
    )
    if mode == "sync":
        events = list(r.responses(model="gpt", input="s", stream=True))
    else:
        events = [e async for e in await r.aresponses(model="gpt", input="s", stream=True)]
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert events[-1].response.output_text == "Echo (turns=1): s"


def test_a_bad_setting_is_a_value_error_naming_it(fakes: tuple[FakeServer, ...]) -> None:
    with pytest.raises(ValueError, match=r"fallbacks\[0\].gpt: fallback 'nope' is not a model_name"):
        router(fakes, fallbacks=[{"gpt": ["nope"]}])
    with pytest.raises(ValueError, match="routing_strategy"):
        router(fakes, routing_strategy="cost-based-routing")
