"""The seed's computer-use request, and multi-step computer-use loops, through SDK and proxy."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import openai
import pytest
from openai import OpenAI

import llmrelay
from llmrelay import Relay
from tests.e2e.proxy_process import ProxyProcess, start_proxy, write_config
from tests.fakes import bedrock_upstream as aws
from tests.fakes.process import FakeServer

PNG = (
    "data:image/png;base64,"
    + base64.b64encode(
        bytes.fromhex(
            "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
            "1f15c4890000000a49444154789c6360000000020001e221bc330000000049454e44ae426082"
        )
    ).decode()
)
COMPUTER = {"type": "computer_use_preview", "display_width": 1024, "display_height": 768, "environment": "browser"}
GEMINI_CU = "gemini/gemini-2.5-computer-use-preview-10-2025"
SEED_INPUT = [
    {"role": "user", "content": [{"type": "input_text", "text": "Check the latest OpenAI news on bing.com."}]}
]


def screenshot(call_id: str) -> dict:
    return {"type": "computer_call_output", "call_id": call_id, "acknowledged_safety_checks": [],
            "output": {"type": "computer_screenshot", "image_url": PNG}}  # fmt: skip


def test_seed_snippet_and_native_loop_through_the_sdk(upstream: FakeServer) -> None:
    relay = Relay(store="memory")
    common = {"model": "computer-use-preview", "api_key": "sk-test", "api_base": upstream.url, "relay": relay}
    r = llmrelay.responses(**common, tools=[COMPUTER], input=SEED_INPUT, reasoning={"summary": "concise"},
                           truncation="auto")  # fmt: skip
    call = r.output[-1]
    assert call.type == "computer_call" and call.action.type == "screenshot"
    assert call.pending_safety_checks
    assert upstream.requests()[0]["body"] == {"model": "computer-use-preview", "tools": [COMPUTER],
                                             "input": SEED_INPUT, "reasoning": {"summary": "concise"},
                                             "truncation": "auto"}  # fmt: skip
    acked = screenshot(call.call_id) | {
        "acknowledged_safety_checks": [c.model_dump() for c in call.pending_safety_checks]
    }
    r2 = llmrelay.responses(**common, tools=[COMPUTER], input=[acked], previous_response_id=r.id, truncation="auto")
    assert r2.output[-1].type == "computer_call" and r2.output[-1].action.type == "click"
    sent = upstream.requests()[1]["body"]
    assert sent["input"][0]["acknowledged_safety_checks"] == acked["acknowledged_safety_checks"]
    # the next step statelessly: the client resends every item itself
    items = [*SEED_INPUT, call.model_dump(exclude_none=True), acked, r2.output[-1].model_dump(exclude_none=True),
             screenshot(r2.output[-1].call_id)]  # fmt: skip
    r3 = llmrelay.responses(**common, tools=[COMPUTER], input=items, truncation="auto")
    assert r3.output[-1].action.model_dump(exclude_none=True) == {"type": "type", "text": "hello"}


@pytest.fixture(scope="module")
def proxy(
    openai_fake: FakeServer, anthropic_fake: FakeServer, gemini_fake: FakeServer, tmp_path_factory
) -> Iterator[ProxyProcess]:
    config = {"model_list": [
        {"model_name": "computer-use-preview",
         "litellm_params": {"model": "openai/computer-use-preview", "api_key": "sk", "api_base": openai_fake.url}},
        {"model_name": "claude-computer",
         "litellm_params": {"model": "anthropic/claude-sonnet-4-5", "api_key": "sk", "api_base": anthropic_fake.url}},
        {"model_name": "gemini-computer",
         "litellm_params": {"model": GEMINI_CU, "api_key": "sk", "api_base": gemini_fake.url}},
    ]}  # fmt: skip
    with start_proxy("--config", str(write_config(config, tmp_path_factory.mktemp("cu")))) as p:
        yield p


def test_seed_snippet_through_the_proxy(proxy: ProxyProcess, upstream: FakeServer) -> None:
    client = OpenAI(base_url=proxy.url, api_key="your-api-key", max_retries=0)
    response = client.responses.create(model="computer-use-preview", tools=[COMPUTER], input=SEED_INPUT,
                                       reasoning={"summary": "concise"}, truncation="auto")  # fmt: skip
    assert response.output[-1].type == "computer_call"
    assert upstream.requests()[-1]["body"]["tools"] == [COMPUTER]


@pytest.mark.parametrize("mode", ["sdk", "proxy"])
def test_native_three_step_computer_loop(mode: str, proxy: ProxyProcess, upstream: FakeServer) -> None:
    if mode == "proxy":
        create = OpenAI(base_url=proxy.url, api_key="k", max_retries=0).responses.create
    else:
        relay = Relay(store="memory")

        def create(**kw):
            return llmrelay.responses(relay=relay, api_key="sk", api_base=upstream.url, **kw)

    r = create(model="computer-use-preview", tools=[COMPUTER], input=SEED_INPUT, truncation="auto")
    actions = []
    while r.output[-1].type == "computer_call":
        call = r.output[-1]
        actions.append(call.action.model_dump(exclude_none=True))
        r = create(model="computer-use-preview", tools=[COMPUTER], previous_response_id=r.id,
                   input=[screenshot(call.call_id)], truncation="auto")  # fmt: skip
    assert actions == [{"type": "screenshot"}, {"type": "click", "button": "left", "x": 100, "y": 200},
                       {"type": "type", "text": "hello"}]  # fmt: skip
    assert r.output[-1].type == "message"
    # every step but the first continued on the upstream's own state
    assert all("previous_response_id" in q["body"] for q in upstream.requests()[1:])


@pytest.mark.parametrize("mode", ["sdk", "proxy"])
def test_anthropic_three_step_computer_loop(mode: str, proxy: ProxyProcess, anthropic_fake: FakeServer) -> None:
    anthropic_fake.reset()
    if mode == "proxy":
        client = OpenAI(base_url=proxy.url, api_key="k", max_retries=0)
        create = client.responses.create
        model = "claude-computer"
    else:
        relay = Relay(store="memory")

        def create(**kw):
            return llmrelay.responses(relay=relay, api_key="sk", api_base=anthropic_fake.url, **kw)

        model = "anthropic/claude-sonnet-4-5"
    r = create(model=model, tools=[COMPUTER], input=SEED_INPUT, reasoning={"summary": "concise"}, truncation="auto")
    actions = []
    for _ in range(3):
        call = r.output[-1]
        assert call.type == "computer_call"
        actions.append(call.action.model_dump(exclude_none=True))
        r = create(model=model, tools=[COMPUTER], previous_response_id=r.id, input=[screenshot(call.call_id)],
                   truncation="auto")  # fmt: skip
    assert actions == [
        {"type": "screenshot"},
        {"type": "click", "button": "left", "x": 100, "y": 200},
        {"type": "type", "text": "hello"},
    ]
    assert r.output[-1].type == "message"
    last = anthropic_fake.requests()[-1]
    assert last["headers"]["anthropic-beta"] == "computer-use-2025-01-24"
    assert last["body"]["tools"] == [{"type": "computer_20250124", "name": "computer",
                                      "display_width_px": 1024, "display_height_px": 768}]  # fmt: skip
    results = [b for m in last["body"]["messages"] for b in (m["content"] if isinstance(m["content"], list) else [])
               if b.get("type") == "tool_result"]  # fmt: skip
    assert len(results) == 3 and results[0]["content"][0]["type"] == "image"
    assert results[0]["content"][0]["source"]["media_type"] == "image/png"


@pytest.mark.parametrize("name", ["anthropic", "gemini", "chat", "bedrock"])
def test_truncation_auto_drops_the_oldest_turns_and_disabled_is_a_400(request, name: str) -> None:
    fake: FakeServer = request.getfixturevalue(f"{name}_fake")
    fake.reset()
    model = {"anthropic": "anthropic/claude-sonnet-4-5", "gemini": "gemini/gemini-2.5-flash",
             "chat": "groq/llama-3.3-70b", "bedrock": "bedrock/anthropic.claude-sonnet-4-5-v1:0"}[name]  # fmt: skip
    too_long = {
        "anthropic": {"status": 400, "body": {"type": "error", "error": {
            "type": "invalid_request_error", "message": "prompt is too long: 210000 tokens > 200000 maximum"}}},
        "gemini": {"status": 400, "body": {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message":
            "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."}}},
        "chat": {"status": 400, "body": {"error": {"type": "invalid_request_error", "param": None,
            "code": None, "message": "This model's maximum context length is 8192 tokens."}}},
        "bedrock": {"error": "ValidationException", "message": "Input is too long for requested model."},
    }[name]  # fmt: skip
    relay = Relay(store="memory")
    history = []
    for i in range(1, 5):
        history += [{"role": "user", "content": f"turn {i}"}, {"role": "assistant", "content": f"reply {i}"}]
    history.pop()  # end on the user's turn
    common = {"model": model, "api_key": "k", "api_base": fake.url, "relay": relay, "instructions": "Be brief."}
    if name == "bedrock":
        common |= {"aws_access_key_id": aws.ACCESS_KEY, "aws_secret_access_key": aws.SECRET_KEY}
    fake.enqueue(too_long)
    r = llmrelay.responses(**common, input=history, truncation="auto")
    assert r.output_text == "Echo (turns=2): turn 4"  # turns 1 and 2 went, the last user turn stayed
    first, second = fake.requests()
    assert len(str(second["body"])) < len(str(first["body"]))
    assert "Be brief." in str(second["body"])
    fake.enqueue(too_long)
    with pytest.raises(openai.BadRequestError) as exc:
        llmrelay.responses(**common, input=history)
    assert exc.value.body["code"] == "context_length_exceeded" and exc.value.body["param"] == "input"


def test_truncation_against_a_configured_window_counts_with_the_provider(anthropic_fake: FakeServer, tmp_path) -> None:
    history = []
    for i in range(1, 5):
        history += [{"role": "user", "content": f"turn {i}"}, {"role": "assistant", "content": f"reply {i}"}]
    history.pop()
    request = {"input": history, "instructions": "Be brief.", "truncation": "auto"}
    relay = Relay(store="memory")
    model = {"model": "anthropic/claude-sonnet-4-5", "api_key": "k", "api_base": anthropic_fake.url}
    full = llmrelay.count_input_tokens(**model, relay=relay, input=history, instructions="Be brief.").input_tokens
    for window, turns in ((full, 4), (full - 1, 2)):  # just fits: untouched; just over: older turns go
        anthropic_fake.reset()
        config = {"model_list": [{"model_name": "claude", "model_info": {"max_input_tokens": window},
                                  "litellm_params": {**model, "model": model["model"]}}]}  # fmt: skip
        with start_proxy("--config", str(write_config(config, tmp_path))) as proxy:
            client = OpenAI(base_url=proxy.url, api_key="k", max_retries=0)
            r = client.responses.create(model="claude", **request)
            assert r.output_text == f"Echo (turns={turns}): turn 4"
            sent = [q for q in anthropic_fake.requests() if q["path"] == "/v1/messages"]
            assert len(sent) == 1 and sent[0]["body"]["system"] == "Be brief."
            too_long = {"type": "invalid_request_error", "message": "prompt is too long: 9 tokens > 8 maximum"}
            anthropic_fake.enqueue({"status": 400, "body": {"type": "error", "error": too_long}})
            with pytest.raises(openai.BadRequestError) as exc:  # disabled: the provider's own verdict, as a 400
                client.responses.create(model="claude", **{**request, "truncation": "disabled"})
            assert exc.value.body["code"] == "context_length_exceeded"


@pytest.mark.parametrize("mode", ["sdk", "proxy"])
def test_gemini_computer_loop_scales_the_grid_to_the_display(
    mode: str, proxy: ProxyProcess, gemini_fake: FakeServer
) -> None:
    gemini_fake.reset()
    if mode == "proxy":
        create = OpenAI(base_url=proxy.url, api_key="k", max_retries=0).responses.create
        model = "gemini-computer"
    else:
        relay = Relay(store="memory")

        def create(**kw):
            return llmrelay.responses(relay=relay, api_key="sk", api_base=gemini_fake.url, **kw)

        model = GEMINI_CU
    r = create(model=model, tools=[COMPUTER], input=SEED_INPUT)
    actions = []
    while r.output[-1].type == "computer_call" and len(actions) < 6:
        calls = [i for i in r.output if i.type == "computer_call"]
        actions += [c.action.model_dump(exclude_none=True) for c in calls]
        r = create(model=model, tools=[COMPUTER], previous_response_id=r.id,
                   input=[screenshot(c.call_id) for c in calls])  # fmt: skip
    text = "Check the latest OpenAI news on bing.com."
    assert actions == [
        {"type": "screenshot"},
        {"type": "click", "button": "left", "x": 512, "y": 230},  # (500, 300) on Gemini's 1000 grid
        {"type": "click", "button": "left", "x": 512, "y": 230},
        {"type": "type", "text": text + "\n"},
    ]
    assert r.output[-1].type == "message"
    last = gemini_fake.requests()[-1]["body"]
    assert last["tools"] == [{"computerUse": {"environment": "ENVIRONMENT_BROWSER",
                                              "excludedPredefinedFunctions": ["navigate", "search"]}}]  # fmt: skip
    calls = [p["functionCall"] for c in last["contents"] for p in c["parts"] if "functionCall" in p]
    assert [c["name"] for c in calls] == ["open_web_browser", "click_at", "type_text_at"]
    args = calls[2]["args"]
    assert args["text"] == text and args["press_enter"] is True
    assert abs(args["x"] - 500) <= 1 and abs(args["y"] - 300) <= 1  # pixels back to the grid: within a unit
    answers = [p["functionResponse"] for c in last["contents"] for p in c["parts"] if "functionResponse" in p]
    assert len(answers) == 3 and answers[0]["parts"][0]["inlineData"]["mimeType"] == "image/png"
