"""The SDK against real fake Anthropic, Gemini and Chat Completions servers, sync and async."""

from __future__ import annotations

import json
from dataclasses import dataclass

import openai
import pytest
from openai.types.responses import Response

from tests.conftest import SDK
from tests.fakes import bedrock_upstream as aws
from tests.fakes.process import FakeServer

BEDROCK_CLAUDE = "bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0"


@dataclass
class Target:
    name: str
    model: str
    fake: FakeServer

    def params(self, **extra: object) -> dict:
        params = {"model": self.model, "api_key": "test-key", "api_base": self.fake.url, **extra}
        if self.name == "bedrock":  # SigV4 with the fake's test credentials; "bad-key" signs with a wrong secret
            secret = "bad-key" if params.pop("api_key") == "bad-key" else aws.SECRET_KEY
            params |= {"aws_access_key_id": aws.ACCESS_KEY, "aws_secret_access_key": secret}
        return params


@pytest.fixture(params=["anthropic", "gemini", "chat", "bedrock"])
def target(request: pytest.FixtureRequest) -> Target:
    name = request.param
    fake = request.getfixturevalue(f"{name}_fake")
    fake.reset()
    model = {"anthropic": "anthropic/claude-sonnet-4-5", "gemini": "gemini/gemini-2.5-flash",
             "chat": "groq/llama-3.3-70b", "bedrock": BEDROCK_CLAUDE}[name]  # fmt: skip
    return Target(name, model, fake)


TOOL = {"type": "function", "name": "lookup", "description": "Look something up.",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}  # fmt: skip


def texts(r: Response) -> list[str]:
    return [i.type for i in r.output]


async def test_plain_text(sdk: SDK, target: Target) -> None:
    r = await sdk.create(**target.params(), input="hello there", instructions="Be brief.", max_output_tokens=200)
    assert r.output_text == "Echo (turns=1): hello there"
    assert r.status == "completed" and r.usage.output_tokens > 0
    assert r.model == target.model.split("/", 1)[1]
    assert (await sdk.get(r.id)).output_text == r.output_text


async def test_stream_matches_the_non_streamed_result_and_is_stored(sdk: SDK, target: Target) -> None:
    events = await sdk.stream(**target.params(), input="stream this")
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"] and types[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response
    plain = await sdk.create(**target.params(), input="stream this")
    assert final.output_text == plain.output_text == "Echo (turns=1): stream this"
    assert [i.type for i in final.output] == [i.type for i in plain.output]
    assert (await sdk.get(final.id)).output_text == final.output_text
    await sdk.delete(final.id)
    with pytest.raises(openai.NotFoundError):
        await sdk.get(final.id)


async def test_function_tool_loop(sdk: SDK, target: Target) -> None:
    first = await sdk.create(**target.params(), input="weather in Paris", tools=[TOOL])
    call = first.output[-1]
    assert call.type == "function_call" and call.name == "lookup"
    assert json.loads(call.arguments) == {"q": "weather in Paris"}
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
    second = await sdk.create(**target.params(), input=[output], tools=[TOOL], previous_response_id=first.id)
    assert second.output_text == "Echo (turns=1): tool said sunny"
    # the same loop statelessly: the client resends every item itself
    items = [{"role": "user", "content": "weather in Paris"}, call.model_dump(exclude_none=True), output]
    third = await sdk.create(**target.params(), input=items, tools=[TOOL])
    assert third.output_text == "Echo (turns=1): tool said sunny"


async def test_streamed_tool_call(sdk: SDK, target: Target) -> None:
    events = await sdk.stream(**target.params(), input="find cats", tools=[TOOL])
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert json.loads(args) == {"q": "find cats"}
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert len(done) == 1 and json.loads(done[0].arguments) == {"q": "find cats"}


async def test_structured_output(sdk: SDK, target: Target) -> None:
    schema = {"type": "object", "properties": {"echo": {"type": "string"}}, "required": ["echo"]}
    r = await sdk.create(**target.params(), input="give json",
                         text={"format": {"type": "json_schema", "name": "reply", "schema": schema}})  # fmt: skip
    assert "echo" in json.loads(r.output_text)


async def test_reasoning(sdk: SDK, target: Target) -> None:
    r = await sdk.create(**target.params(), input="think first", reasoning={"effort": "low", "summary": "auto"},
                         include=["reasoning.encrypted_content"], max_output_tokens=4000)  # fmt: skip
    assert r.output[0].type == "reasoning" and r.output[0].summary[0].text
    assert r.output_text.endswith("think first")
    if target.name in ("anthropic", "bedrock"):
        assert r.output[0].encrypted_content
    # the signed reasoning replays through the store on the next turn
    again = await sdk.create(**target.params(), input="and again", previous_response_id=r.id,
                             reasoning={"effort": "low", "summary": "auto"}, max_output_tokens=4000)  # fmt: skip
    assert again.output_text == "Echo (turns=2): and again"


async def test_chaining_replays_the_history(sdk: SDK, target: Target) -> None:
    first = await sdk.create(**target.params(), input="one")
    second = await sdk.create(**target.params(), input="two", previous_response_id=first.id)
    assert second.output_text == "Echo (turns=2): two"
    assert second.previous_response_id == first.id
    items = await sdk.items(second.id)
    assert [i.content[0].text for i in items.data] == ["two"]


async def test_incomplete_when_out_of_tokens(sdk: SDK, target: Target) -> None:
    r = await sdk.create(**target.params(), input="a b c d e f g h i j k l m n o p", max_output_tokens=3)
    assert r.status == "incomplete" and r.incomplete_details.reason == "max_output_tokens"


async def test_unsupported_fields_are_refused_or_dropped_on_request(sdk: SDK, target: Target) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        await sdk.create(**target.params(), input="x", max_tool_calls=2)
    assert exc.value.body["code"] == "unsupported_parameter" and exc.value.body["param"] == "max_tool_calls"
    assert target.name in exc.value.message or "chat" in exc.value.message
    with pytest.raises(openai.BadRequestError, match="file_search"):
        await sdk.create(**target.params(), input="x", tools=[{"type": "file_search", "vector_store_ids": ["v"]}])
    assert target.fake.requests() == []
    r = await sdk.create(**target.params(), input="x", max_tool_calls=2, drop_params=True)
    assert r.output_text == "Echo (turns=1): x"
    assert "max_tool_calls" not in json.dumps(target.fake.requests()[-1]["body"])


async def test_upstream_errors_map_to_openai_exceptions(sdk: SDK, target: Target) -> None:
    target.fake.enqueue({"status": 429, "headers": {"retry-after": "2"}})
    with pytest.raises(openai.RateLimitError) as exc:
        await sdk.create(**target.params(), input="x")
    assert exc.value.response.headers.get("retry-after") == "2"
    with pytest.raises(openai.AuthenticationError):
        await sdk.create(**target.params(api_key="bad-key"), input="x")
    target.fake.enqueue({"status": 529 if target.name == "anthropic" else 503})
    with pytest.raises(openai.InternalServerError) as exc:
        await sdk.create(**target.params(), input="x")
    assert exc.value.status_code == 503


async def test_a_failure_mid_stream_becomes_response_failed(sdk: SDK, target: Target) -> None:
    target.fake.enqueue({"fail_after_events": 3})
    events = await sdk.stream(**target.params(), input="a b c d e f")
    assert events[-1].type == "response.failed" and events[-1].response.error.message
    target.fake.enqueue({"drop_after_events": 3})
    events = await sdk.stream(**target.params(), input="a b c d e f")
    assert events[-1].type == "response.failed"


async def test_a_conversation_moves_across_providers(
    sdk: SDK,
    upstream: FakeServer,
    anthropic_fake: FakeServer,
    gemini_fake: FakeServer,
    chat_fake: FakeServer,
    bedrock_fake: FakeServer,
) -> None:
    aws_keys = {"aws_access_key_id": aws.ACCESS_KEY, "aws_secret_access_key": aws.SECRET_KEY}
    hops = [
        {"model": "openai/gpt-4o", "api_base": upstream.url},
        {"model": "anthropic/claude-sonnet-4-5", "api_base": anthropic_fake.url},
        {"model": "gemini/gemini-2.5-flash", "api_base": gemini_fake.url},
        {"model": "groq/llama-3.3-70b", "api_base": chat_fake.url},
        {"model": BEDROCK_CLAUDE, "api_base": bedrock_fake.url, **aws_keys},
    ]
    previous = None
    for turn, hop in enumerate(hops, start=1):
        r = await sdk.create(**hop, api_key="test-key", input=f"turn {turn}", previous_response_id=previous)
        assert r.output_text == f"Echo (turns={turn}): turn {turn}"
        previous = r.id


async def test_text_format_returns_the_parsed_model(sdk: SDK, target: Target) -> None:
    from pydantic import BaseModel

    class Reply(BaseModel):
        echo: str
        turns: int

    r = await sdk.create(**target.params(), input="parse me", text_format=Reply)
    assert isinstance(r.output_parsed, Reply)
    assert r.output_parsed.echo.endswith("parse me") and r.output_parsed.turns == 1


async def test_count_input_tokens_uses_the_providers_counter(target: Target, relay) -> None:
    import llmrelay

    if target.name == "chat":
        with pytest.raises(openai.BadRequestError, match="token counter"):
            await llmrelay.acount_input_tokens(relay=relay, **target.params(), input="count me please")
        return
    small = await llmrelay.acount_input_tokens(relay=relay, **target.params(), input="count me")
    big = await llmrelay.acount_input_tokens(relay=relay, **target.params(), input="count me " * 20)
    assert small.object == "response.input_tokens" and 0 < small.input_tokens < big.input_tokens
    path = target.fake.requests()[-1]["path"]
    assert path.endswith(("/messages/count_tokens", ":countTokens", "/count-tokens"))


async def test_namespace_tools_are_flattened_and_restored(sdk: SDK, target: Target) -> None:
    # Codex groups tools in namespaces; providers without them see "<namespace>__<name>".
    namespace = {"type": "namespace", "name": "crm", "description": "CRM tools", "tools": [TOOL]}
    r = await sdk.create(**target.params(), input="find Ada", tools=[namespace])
    call = r.output[-1]
    assert call.type == "function_call" and call.name == "lookup" and call.namespace == "crm"
    sent = json.dumps(target.fake.requests()[-1]["body"])
    assert "crm__lookup" in sent
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "found"}
    done = await sdk.create(**target.params(), input=[output], tools=[namespace], previous_response_id=r.id)
    assert done.output_text == "Echo (turns=1): tool said found"


@pytest.mark.parametrize("path", ["", "/", "/v1beta"])
async def test_gemini_api_base_with_or_without_the_version_path(sdk: SDK, gemini_fake: FakeServer, path: str) -> None:
    gemini_fake.reset()
    base = gemini_fake.root + path  # "http://host", as google-genai's base_url takes it, or ".../v1beta"
    r = await sdk.create(model="gemini/gemini-2.5-flash", api_key="test-key", api_base=base, input="hi")
    assert r.output_text == "Echo (turns=1): hi"
    (req,) = gemini_fake.requests()
    assert req["path"] == "/v1beta/models/gemini-2.5-flash:generateContent"
