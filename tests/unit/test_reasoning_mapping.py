"""reasoning.effort / summary -> each provider's thinking settings, by the documented tables."""

import itertools

import openai
import orjson
import pytest

from llmrelay.items import normalize
from llmrelay.providers.anthropic import Anthropic
from llmrelay.providers.base import Call
from llmrelay.providers.chat import Chat
from llmrelay.providers.gemini import Gemini
from llmrelay.providers.registry import make_deployment


def body(adapter, model: str, **params) -> dict:
    counter = itertools.count()
    call = Call(
        id="resp_1",
        params={"model": model, "input": "hi", **params},
        deployment=make_deployment(model, api_key="k", api_base="http://upstream.test/v1"),
        input_items=normalize("hi", lambda p: f"{p}_{next(counter)}"),
        created_at=0,
        new_id=lambda p: f"{p}_{next(counter)}",
    )
    return orjson.loads(adapter.build_request(call).body)


@pytest.mark.parametrize(
    ("effort", "thinking", "max_tokens"),
    [
        ("minimal", {"type": "enabled", "budget_tokens": 1024}, 4096 + 1024),
        ("low", {"type": "enabled", "budget_tokens": 2048}, 4096 + 2048),
        ("medium", {"type": "enabled", "budget_tokens": 8192}, 4096 + 8192),
        ("high", {"type": "enabled", "budget_tokens": 16384}, 4096 + 16384),
        ("none", {"type": "disabled"}, 4096),
    ],
)
def test_anthropic_thinking_budget(effort: str, thinking: dict, max_tokens: int) -> None:
    sent = body(Anthropic(), "anthropic/claude-sonnet-4-5", reasoning={"effort": effort})
    assert sent["thinking"] == thinking and sent["max_tokens"] == max_tokens


def test_anthropic_summary_alone_turns_thinking_on_and_budget_fits_max_tokens() -> None:
    assert body(Anthropic(), "anthropic/claude-sonnet-4-5", reasoning={"summary": "concise"})["thinking"] == {
        "type": "enabled", "budget_tokens": 8192}  # fmt: skip
    tight = body(Anthropic(), "anthropic/claude-sonnet-4-5", reasoning={"effort": "high"}, max_output_tokens=3000)
    assert tight["max_tokens"] == 3000 and tight["thinking"]["budget_tokens"] == 2999
    least = body(Anthropic(), "anthropic/claude-sonnet-4-5", reasoning={"effort": "low"}, max_output_tokens=1025)
    assert least["thinking"] == {"type": "enabled", "budget_tokens": 1024}


@pytest.mark.parametrize("reasoning", [{"effort": "minimal"}, {"summary": "auto"}])
def test_anthropic_reasoning_without_room_to_think_is_refused_not_dropped(reasoning: dict) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        body(Anthropic(), "anthropic/claude-sonnet-4-5", reasoning=reasoning, max_output_tokens=1024)
    assert refused.value.param == "max_output_tokens" and "above 1024" in refused.value.message
    assert body(Anthropic(), "anthropic/claude-sonnet-4-5", reasoning={"effort": "none"}, max_output_tokens=200)[
        "thinking"] == {"type": "disabled"}  # fmt: skip


@pytest.mark.parametrize(
    ("model", "effort", "summary", "config"),
    [
        ("gemini/gemini-2.5-flash", "low", None, {"thinkingBudget": 1024}),
        ("gemini/gemini-2.5-flash", "high", "auto", {"thinkingBudget": 24576, "includeThoughts": True}),
        ("gemini/gemini-2.5-flash", "none", "auto", {"thinkingBudget": 0}),
        ("gemini/gemini-3-pro-preview", "minimal", None, {"thinkingLevel": "low"}),
        ("gemini/gemini-3-pro-preview", "high", "detailed", {"thinkingLevel": "high", "includeThoughts": True}),
    ],
)
def test_gemini_thinking_config(model: str, effort: str, summary: str | None, config: dict) -> None:
    reasoning = {"effort": effort} | ({"summary": summary} if summary else {})
    assert body(Gemini(), model, reasoning=reasoning)["generationConfig"]["thinkingConfig"] == config


def test_chat_reasoning_effort_passes_as_is() -> None:
    assert body(Chat(), "groq/openai/gpt-oss-120b", reasoning={"effort": "high"})["reasoning_effort"] == "high"
