"""Translated providers through the proxy, driven by the official openai SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest
from openai import OpenAI

from tests.e2e.proxy_process import ProxyProcess, start_proxy, write_config
from tests.fakes import bedrock_upstream as aws
from tests.fakes.process import FakeServer

MODELS = {"claude": "anthropic/claude-sonnet-4-5", "gemini": "gemini/gemini-2.5-flash", "llama": "groq/llama-3.3-70b",
          "bedrock": "bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0"}  # fmt: skip
TOOL = {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}


@pytest.fixture(scope="module")
def proxy(
    openai_fake: FakeServer,
    anthropic_fake: FakeServer,
    gemini_fake: FakeServer,
    chat_fake: FakeServer,
    bedrock_fake: FakeServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ProxyProcess]:
    bases = {
        "claude": anthropic_fake.url,
        "gemini": gemini_fake.url,
        "llama": chat_fake.url,
        "bedrock": bedrock_fake.url,
    }
    aws_keys = {"aws_access_key_id": aws.ACCESS_KEY, "aws_secret_access_key": aws.SECRET_KEY}
    model_list = [
        {
            "model_name": name,
            "litellm_params": {"model": model, "api_base": bases[name]}
            | (aws_keys if name == "bedrock" else {"api_key": "os.environ/TEST_KEY"}),
        }
        for name, model in MODELS.items()
    ]
    model_list += [
        {"model_name": "gpt", "litellm_params": {"model": "openai/gpt-4o", "api_key": "os.environ/TEST_KEY",
                                                 "api_base": openai_fake.url}},
        {"model_name": "claude-lenient", "litellm_params": {"model": MODELS["claude"], "api_key": "os.environ/TEST_KEY",
                                                            "api_base": anthropic_fake.url, "drop_params": True}},
    ]  # fmt: skip
    config = write_config({"model_list": model_list}, tmp_path_factory.mktemp("cfg"))
    with start_proxy("--config", str(config), env={"TEST_KEY": "test-key"}) as p:
        yield p


@pytest.fixture
def client(proxy: ProxyProcess) -> OpenAI:
    return OpenAI(base_url=proxy.url, api_key="k", max_retries=0)


@pytest.mark.parametrize("model", list(MODELS))
def test_stream_helper_final_response_equals_the_non_streamed_result(client: OpenAI, model: str) -> None:
    plain = client.responses.create(model=model, input="same answer")
    with client.responses.stream(model=model, input="same answer") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.output_text == plain.output_text == "".join(deltas) == "Echo (turns=1): same answer"
    assert [i.type for i in final.output] == [i.type for i in plain.output]
    assert client.responses.retrieve(final.id).output_text == final.output_text
    client.responses.delete(final.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(final.id)


@pytest.mark.parametrize("model", list(MODELS))
def test_function_tool_loop_through_the_proxy(client: OpenAI, model: str) -> None:
    first = client.responses.create(model=model, input="capital of France", tools=[TOOL])
    call = first.output[-1]
    assert call.type == "function_call" and json.loads(call.arguments) == {"q": "capital of France"}
    with client.responses.stream(
        model=model, tools=[TOOL], previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Paris"}],
    ) as stream:  # fmt: skip
        final = stream.get_final_response()
    assert final.output_text == "Echo (turns=1): tool said Paris"


@pytest.mark.parametrize("model", list(MODELS))
def test_structured_output_and_reasoning(client: OpenAI, model: str) -> None:
    schema = {"type": "object", "properties": {"echo": {"type": "string"}}, "required": ["echo"]}
    r = client.responses.create(model=model, input="json please",
                                text={"format": {"type": "json_schema", "name": "r", "schema": schema}})  # fmt: skip
    assert "echo" in json.loads(r.output_text)
    r = client.responses.create(model=model, input="think", reasoning={"effort": "low", "summary": "auto"},
                                max_output_tokens=4000)  # fmt: skip
    assert r.output[0].type == "reasoning"


def test_unsupported_is_a_400_and_drop_params_reports_the_header(proxy: ProxyProcess, client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.responses.create(model="claude", input="x", top_logprobs=3)
    assert exc.value.body["code"] == "unsupported_parameter" and "anthropic" in exc.value.message
    raw = client.responses.with_raw_response.create(model="claude-lenient", input="x", top_logprobs=3)
    assert raw.headers["x-llmrelay-dropped-params"] == "top_logprobs"
    assert raw.parse().output_text == "Echo (turns=1): x"


def test_anthropic_overloaded_is_a_503(client: OpenAI, anthropic_fake: FakeServer) -> None:
    anthropic_fake.enqueue({"status": 529})
    with pytest.raises(openai.InternalServerError) as exc:
        client.responses.create(model="claude", input="x")
    assert exc.value.status_code == 503 and exc.value.body["code"] == "overloaded"


def test_a_conversation_moves_across_providers_through_the_proxy(client: OpenAI) -> None:
    previous = None
    for turn, model in enumerate(["gpt", "claude", "gemini", "llama", "bedrock", "claude"], start=1):
        r = client.responses.create(model=model, input=f"turn {turn}", previous_response_id=previous)
        assert r.output_text == f"Echo (turns={turn}): turn {turn}"
        previous = r.id
