"""The fake Gemini upstream, driven by the official google-genai SDK: if the SDK is happy, the wire format is right."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pydantic
import pytest
from google import genai
from google.genai import errors, types

from tests.fakes import FakeServer, start_fake

KEY = "k"
PLAIN = "gemini-2.0-flash"  # no thinking
THINKING = "gemini-2.5-flash"
GEMINI3 = "gemini-3-flash-preview"
COMPUTER = "gemini-2.5-computer-use-preview-10-2025"
LOOKUP = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name="lookup",
            description="Look something up.",
            parameters_json_schema={"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
        )
    ]
)


class Reply(pydantic.BaseModel):
    echo: str
    turns: int


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeServer]:
    with start_fake("tests.fakes.gemini_upstream") as server:
        yield server


@pytest.fixture(autouse=True)
def fresh(fake: FakeServer) -> None:
    fake.reset()


def sdk(fake: FakeServer, key: str = KEY, api_version: str | None = "v1beta") -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=fake.root, api_version=api_version))


@pytest.fixture
def client(fake: FakeServer) -> genai.Client:
    return sdk(fake)


def post(
    fake: FakeServer, model: str, method: str, body: Any, api_key: str | None = KEY, **params: str
) -> httpx.Response:
    headers = {"x-goog-api-key": api_key} if api_key else {}
    return httpx.post(f"{fake.url}/models/{model}:{method}", json=body, headers=headers, params=params)


def sse_payloads(response: httpx.Response) -> list[str]:
    """The ``data:`` payloads, checking Google's CRLF framing on the way."""
    assert response.headers["content-type"] == "text/event-stream"
    frames = response.text.split("\r\n\r\n")
    assert frames[-1] == ""
    assert all(frame.startswith("data: ") and "\n" not in frame for frame in frames[:-1])
    return [frame.removeprefix("data: ") for frame in frames[:-1]]


def test_generate_content_echoes_and_matches_googles_wire_format(fake: FakeServer, client: genai.Client) -> None:
    config = types.GenerateContentConfig(system_instruction="Be brief.", temperature=0.2)
    response = client.models.generate_content(model=PLAIN, contents="hello", config=config)
    assert response.text == "Echo (turns=1): hello"
    candidate = response.candidates[0]
    assert candidate.finish_reason == types.FinishReason.STOP and candidate.index == 0
    assert candidate.content.role == "model"
    usage = response.usage_metadata
    assert usage.prompt_token_count == 3 and usage.candidates_token_count == 3 and usage.total_token_count == 6
    assert usage.thoughts_token_count is None and usage.prompt_tokens_details[0].modality == types.MediaModality.TEXT
    assert response.model_version == PLAIN and len(response.response_id) == 23
    (recorded,) = fake.requests()
    assert recorded["method"] == "POST" and recorded["path"] == f"/v1beta/models/{PLAIN}:generateContent"
    assert recorded["headers"]["x-goog-api-key"] == KEY
    assert recorded["body"] == {
        "contents": [{"parts": [{"text": "hello"}], "role": "user"}],
        "systemInstruction": {"parts": [{"text": "Be brief."}], "role": "user"},
        "generationConfig": {"temperature": 0.2},
    }

    raw = post(fake, PLAIN, "generateContent", {"contents": [{"parts": [{"text": "hello"}]}]})
    assert raw.headers["content-type"] == "application/json; charset=UTF-8"
    assert raw.headers["server"] == "scaffolding on HTTPServer2" and "x-request-id" not in raw.headers
    assert raw.text.startswith('{\n  "candidates": [\n') and raw.text.endswith("}\n")  # pretty-printed
    types.GenerateContentResponse.model_validate_json(raw.text)  # no field the SDK does not know
    assert list(raw.json()) == ["candidates", "usageMetadata", "modelVersion", "responseId"]


def test_conversation_turns_media_and_snake_case_names(fake: FakeServer, client: genai.Client) -> None:
    png = types.Part.from_bytes(data=b"\x89PNG fake", mime_type="image/png")
    contents = [
        types.Content(role="user", parts=[types.Part(text="first")]),
        types.Content(role="model", parts=[types.Part(text="ok")]),
        types.Content(role="user", parts=[types.Part(text="what is"), png, types.Part(text="this?")]),
    ]
    response = client.models.generate_content(model=PLAIN, contents=contents)
    assert response.text == "Echo (turns=2): what is this?"
    details = {d.modality: d.token_count for d in response.usage_metadata.prompt_tokens_details}
    assert details == {types.MediaModality.TEXT: 5, types.MediaModality.IMAGE: 258}
    # Proto JSON takes snake_case names too; unknown names are refused the way Google refuses them.
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generation_config": {"max_output_tokens": 9}}
    assert post(fake, PLAIN, "generateContent", body).json()["candidates"][0]["content"]["parts"] == [
        {"text": "Echo (turns=1): hi"}
    ]
    bad = post(fake, PLAIN, "generateContent", body | {"generation_config": {"maxTokens": 9}})
    assert bad.status_code == 400 and bad.json()["error"]["status"] == "INVALID_ARGUMENT"
    message = bad.json()["error"]["message"]
    assert (
        message
        == "Invalid JSON payload received. Unknown name \"maxTokens\" at 'generation_config': Cannot find field."
    )


def test_stream_chunks_join_to_the_full_text(fake: FakeServer, client: genai.Client) -> None:
    chunks = list(client.models.generate_content_stream(model=PLAIN, contents="stream me please"))
    assert len(chunks) == 5  # "Echo ", "(turns=1): ", "stream ", "me ", "please"
    assert "".join(c.text for c in chunks) == "Echo (turns=1): stream me please"
    assert [c.candidates[0].finish_reason for c in chunks][-2:] == [None, types.FinishReason.STOP]
    assert len({c.response_id for c in chunks}) == 1
    assert [c.usage_metadata.candidates_token_count for c in chunks] == [1, 2, 3, 4, 5]
    assert fake.requests()[0]["query"] == {"alt": "sse"}

    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    payloads = sse_payloads(post(fake, PLAIN, "streamGenerateContent", body, alt="sse"))
    assert payloads[0].startswith('{"candidates": [{"content": {"parts": [{"text": "Echo "}],"role": "model"}')
    for payload in payloads:
        types.GenerateContentResponse.model_validate_json(payload)
    # Without alt=sse Google streams a JSON array of the same chunks.
    array = post(fake, PLAIN, "streamGenerateContent", body).json()
    assert "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in array) == "Echo (turns=1): hi"


def test_function_calling_loop_round_trips_the_signature(fake: FakeServer, client: genai.Client) -> None:
    question = types.Content(role="user", parts=[types.Part(text="weather in Paris")])
    config = types.GenerateContentConfig(tools=[LOOKUP])
    first = client.models.generate_content(model=THINKING, contents=[question], config=config)
    (call,) = first.function_calls
    assert call.name == "lookup" and call.args == {"q": "weather in Paris"} and call.id is None
    part = first.candidates[0].content.parts[0]
    assert part.thought_signature and first.candidates[0].finish_reason == types.FinishReason.STOP

    answer = types.Part.from_function_response(name="lookup", response={"output": "sunny"})
    contents = [question, first.candidates[0].content, types.Content(role="user", parts=[answer])]
    second = client.models.generate_content(model=THINKING, contents=contents, config=config)
    assert second.text == "Echo (turns=1): tool said sunny" and second.function_calls is None
    replayed = fake.requests()[1]["body"]["contents"][1]["parts"][0]
    # The SDK sends the signature back in the URL-safe alphabet; Google accepts either.
    assert base64.urlsafe_b64decode(replayed["thoughtSignature"]) == part.thought_signature
    assert replayed["functionCall"] == {"args": {"q": "weather in Paris"}, "name": "lookup"}

    # Google's ordering rule: a function response must follow the call it answers.
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=THINKING, contents=[question, contents[2]], config=config)
    assert caught.value.code == 400 and "function response turn comes immediately after" in caught.value.message
    forced = types.ToolConfig(function_calling_config=types.FunctionCallingConfig(mode="NONE"))
    no_call = client.models.generate_content(
        model=THINKING, contents=[question], config=config.model_copy(update={"tool_config": forced})
    )
    assert no_call.text == "Echo (turns=1): weather in Paris"


def test_gemini_3_ids_calls_and_requires_the_signature_back(client: genai.Client) -> None:
    question = types.Content(role="user", parts=[types.Part(text="find it")])
    config = types.GenerateContentConfig(tools=[LOOKUP])
    first = client.models.generate_content(model=GEMINI3, contents=[question], config=config)
    call_part = first.candidates[0].content.parts[0]
    assert len(call_part.function_call.id) == 8 and call_part.thought_signature
    answer = types.Content(
        role="user", parts=[types.Part.from_function_response(name="lookup", response={"output": "found"})]
    )
    unsigned = types.Content(role="model", parts=[types.Part(function_call=call_part.function_call)])
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=GEMINI3, contents=[question, unsigned, answer], config=config)
    assert caught.value.status == "INVALID_ARGUMENT" and "missing a thought_signature" in caught.value.message
    second = client.models.generate_content(
        model=GEMINI3, contents=[question, first.candidates[0].content, answer], config=config
    )
    assert second.text == "Echo (turns=1): tool said found"
    assert second.candidates[0].content.parts[-1].thought_signature  # Gemini 3 signs its text too


def test_thinking_summaries_and_thought_tokens(client: genai.Client) -> None:
    config = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(include_thoughts=True))
    response = client.models.generate_content(model=THINKING, contents="think", config=config)
    thought, text = response.candidates[0].content.parts
    assert thought.thought is True and thought.text.startswith("**Echoing the user**")
    assert text.thought is None and response.text == "Echo (turns=1): think"
    usage = response.usage_metadata
    assert usage.thoughts_token_count == 24
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count + 24

    chunks = list(client.models.generate_content_stream(model=THINKING, contents="think", config=config))
    assert chunks[0].candidates[0].content.parts[0].thought is True
    assert "".join(c.text or "" for c in chunks) == "Echo (turns=1): think"
    off = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_budget=0))
    assert (
        client.models.generate_content(model=THINKING, contents="x", config=off).usage_metadata.thoughts_token_count
        is None
    )


def test_max_output_tokens_truncates_and_counts_thoughts(client: genai.Client) -> None:
    config = types.GenerateContentConfig(max_output_tokens=2)
    response = client.models.generate_content(model=PLAIN, contents="one two three", config=config)
    assert response.text == "Echo (turns=1):" and response.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    # Thinking is paid from the same budget: Google then answers a candidate with no parts at all.
    config = types.GenerateContentConfig(max_output_tokens=10)
    starved = client.models.generate_content(model=THINKING, contents="one two three", config=config)
    assert starved.candidates[0].content.parts is None and starved.text is None
    assert starved.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert starved.usage_metadata.thoughts_token_count == 10
    stop = types.GenerateContentConfig(stop_sequences=[":"])
    assert client.models.generate_content(model=PLAIN, contents="x", config=stop).text == "Echo (turns=1)"


def test_json_mode_parses_into_the_schema(fake: FakeServer, client: genai.Client) -> None:
    config = types.GenerateContentConfig(response_mime_type="application/json", response_schema=Reply)
    response = client.models.generate_content(model=PLAIN, contents="hello", config=config)
    assert isinstance(response.parsed, Reply) and response.parsed == Reply(echo="hello", turns=1)
    plain_json = types.GenerateContentConfig(response_mime_type="application/json")
    text = client.models.generate_content(model=PLAIN, contents="hi", config=plain_json).text
    assert json.loads(text) == {"echo": "hi", "turns": 1}


def test_count_tokens_matches_the_prompt_count(fake: FakeServer, client: genai.Client) -> None:
    counted = client.models.count_tokens(model=PLAIN, contents="one two three")
    assert counted.total_tokens == 3
    assert client.models.generate_content(model=PLAIN, contents="one two three").usage_metadata.prompt_token_count == 3
    assert fake.requests()[0]["path"] == f"/v1beta/models/{PLAIN}:countTokens"
    wrapped = {"generateContentRequest": {"model": f"models/{PLAIN}", "contents": [{"parts": [{"text": "a b"}]}]}}
    assert post(fake, PLAIN, "countTokens", wrapped).json() == {
        "totalTokens": 2,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 2}],
    }


def test_errors_come_in_googles_shape(fake: FakeServer, client: genai.Client) -> None:
    bad_key = sdk(fake, key="bad-key")
    with pytest.raises(errors.ClientError) as caught:
        bad_key.models.generate_content(model=PLAIN, contents="hi")
    assert caught.value.code == 400 and caught.value.status == "INVALID_ARGUMENT"
    assert caught.value.message == "API key not valid. Please pass a valid API key."
    assert caught.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    missing = post(fake, PLAIN, "generateContent", {"contents": []}, api_key=None)
    assert missing.status_code == 403 and missing.json()["error"]["status"] == "PERMISSION_DENIED"
    by_query = post(fake, PLAIN, "generateContent", {"contents": [{"parts": [{"text": "q"}]}]}, api_key=None, key=KEY)
    assert by_query.status_code == 200 and fake.requests()[-1]["query"] == {"key": KEY}

    fake.enqueue({"status": 429})
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=PLAIN, contents="hi")
    assert caught.value.code == 429 and caught.value.status == "RESOURCE_EXHAUSTED"
    assert caught.value.details["error"]["details"][-1] == {
        "@type": "type.googleapis.com/google.rpc.RetryInfo",
        "retryDelay": "1s",
    }
    fake.enqueue({"status": 503, "headers": {"retry-after": "2"}})
    with pytest.raises(errors.ServerError) as server_error:
        client.models.generate_content(model=PLAIN, contents="hi")
    assert server_error.value.status == "UNAVAILABLE" and server_error.value.response.headers["retry-after"] == "2"
    with pytest.raises(errors.ClientError) as not_found:
        client.models.generate_content(model="gpt-4o", contents="hi")
    assert not_found.value.code == 404 and not_found.value.status == "NOT_FOUND"
    html = httpx.get(f"{fake.url}/nothing/here")
    assert html.status_code == 404 and html.headers["content-type"].startswith("text/html")


def test_scripted_stream_failures(fake: FakeServer, client: genai.Client) -> None:
    fake.enqueue({"fail_after_events": 2})
    seen = []
    with pytest.raises(errors.ServerError) as caught:
        for chunk in client.models.generate_content_stream(model=PLAIN, contents="a b c d"):
            seen.append(chunk.text)
    assert seen == ["Echo ", "(turns=1): "] and caught.value.status == "INTERNAL"

    fake.enqueue({"drop_after_events": 1})
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream(
            "POST",
            f"{fake.url}/models/{PLAIN}:streamGenerateContent",
            params={"alt": "sse"},
            headers={"x-goog-api-key": KEY},
            json={"contents": [{"parts": [{"text": "a b c"}]}]},
        ) as response,
    ):
        for _ in response.iter_bytes():
            pass

    fake.enqueue({"delta_delay": 0.05})
    started = time.monotonic()
    assert len(list(client.models.generate_content_stream(model=PLAIN, contents="x"))) == 3
    assert time.monotonic() - started >= 0.15
    fake.enqueue([{"fail_after_events": 0}, {"drop_after_events": 0}])
    with pytest.raises(errors.ServerError):
        client.models.generate_content(model=PLAIN, contents="x")
    with pytest.raises(Exception, match="peer closed connection"):
        client.models.generate_content(model=PLAIN, contents="x")


def test_computer_use_session(fake: FakeServer, client: genai.Client) -> None:
    browser = types.Tool(computer_use=types.ComputerUse(environment=types.Environment.ENVIRONMENT_BROWSER))
    config = types.GenerateContentConfig(tools=[browser])
    contents = [types.Content(role="user", parts=[types.Part(text="search for cats")])]
    names = []
    fake.enqueue([{}, {"safety_decision": True}])
    for _ in range(3):
        response = client.models.generate_content(model=COMPUTER, contents=contents, config=config)
        (call,) = response.function_calls
        names.append(call.name)
        if call.name != "open_web_browser":
            assert 0 <= call.args["x"] <= 999 and 0 <= call.args["y"] <= 999
        contents.append(response.candidates[0].content)
        screenshot = types.FunctionResponsePart(
            inline_data=types.FunctionResponseBlob(mime_type="image/png", data=b"\x89PNG")
        )
        answer = types.FunctionResponse(name=call.name, response={"url": "https://example.com"}, parts=[screenshot])
        contents.append(types.Content(role="user", parts=[types.Part(function_response=answer)]))
    assert names == ["open_web_browser", "click_at", "type_text_at"]
    assert call.args["text"] == "search for cats" and call.args["press_enter"] is True
    assert fake.requests()[1]["body"]["contents"][1]["parts"][0]["text"] == "I will open web browser."
    decision = fake.requests()[2]["body"]["contents"][3]["parts"][1]["functionCall"]["args"]["safety_decision"]
    assert decision["decision"] == "require_confirmation"
    done = client.models.generate_content(model=COMPUTER, contents=contents, config=config)
    assert done.text == "Echo (turns=1): tool said https://example.com"
    assert fake.requests()[0]["body"]["tools"] == [{"computerUse": {"environment": "ENVIRONMENT_BROWSER"}}]


def test_safety_finish_and_blocked_prompt(client: genai.Client, fake: FakeServer) -> None:
    fake.enqueue([{"finish_reason": "SAFETY"}, {"block_reason": "SAFETY"}])
    unsafe = client.models.generate_content(model=PLAIN, contents="hi")
    assert unsafe.candidates[0].finish_reason == types.FinishReason.SAFETY and unsafe.text is None
    assert unsafe.candidates[0].content is None and unsafe.candidates[0].safety_ratings
    blocked = client.models.generate_content(model=PLAIN, contents="hi")
    assert blocked.candidates is None and blocked.prompt_feedback.block_reason == types.BlockedReason.SAFETY


def test_default_api_version_and_cached_tokens(fake: FakeServer) -> None:
    fake.enqueue({"cached_tokens": 2, "text": "scripted"})
    default = sdk(fake, api_version=None)  # this SDK's default API version is v1
    response = default.models.generate_content(model=PLAIN, contents="one two three")
    assert response.text == "scripted" and response.usage_metadata.cached_content_token_count == 2
    assert response.usage_metadata.prompt_token_count == 3  # the cached tokens are part of the prompt count
    assert fake.requests()[0]["path"] == f"/v1/models/{PLAIN}:generateContent"


async def test_async_client(fake: FakeServer) -> None:
    client = sdk(fake)
    response = await client.aio.models.generate_content(model=PLAIN, contents="async hello")
    assert response.text == "Echo (turns=1): async hello"
    stream = await client.aio.models.generate_content_stream(model=THINKING, contents="async stream")
    texts = [chunk.text async for chunk in stream]
    assert "".join(texts) == "Echo (turns=1): async stream"
