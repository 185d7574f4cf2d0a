"""Web search carried across: the Responses tool to each provider's, and their findings back as
web_search_call items and url_citation annotations (the wire goldens hold the full exchanges)."""

from __future__ import annotations

import itertools

import pytest
from openai._models import construct_type
from openai.types.responses import ResponseStreamEvent

from llmrelay import errors
from llmrelay.providers import bedrock, chat, web_search
from llmrelay.providers.support import strip_unsupported
from llmrelay.streaming.builder import ResponseBuilder
from tests.fakes import anthropic_upstream
from tests.golden import harness


def test_anthropic_replay_of_a_search_turn_is_a_body_anthropic_takes() -> None:
    # Anthropic wants a replayed web_search_tool_result with its encrypted_content and replayed
    # citations with their encrypted_index: llmrelay replays the turn as its text, which it always takes.
    case = harness.select(["anthropic/web_search"])[0]
    response = harness.parse(case)[0]
    body = harness.replay_body(case, response)
    anthropic_upstream.validate(body, "")
    said = body["messages"][-2]
    assert said["role"] == "assistant" and {b["type"] for b in said["content"]} == {"text"}
    assert "Echo (turns=1): When was Python 3.13 released? That is what two sources say." in [
        b["text"] for b in said["content"]
    ]


def test_a_failed_anthropic_search_is_a_failed_call() -> None:
    error = {"type": "web_search_tool_result_error", "error_code": "max_uses_exceeded"}
    assert web_search.anthropic_result("q", error) == ({"type": "search", "query": "q"}, "failed")
    counter = itertools.count()
    b = ResponseBuilder({"id": "resp_1", "output": [], "tools": []}, lambda p: f"{p}_{next(counter)}")
    kinds = [e.type for e in b.web_search({"type": "search", "query": "q"}, "failed")]
    assert "response.web_search_call.completed" not in kinds and b.response["output"][0]["status"] == "failed"


def test_gemini_offsets_are_utf8_bytes_made_characters() -> None:
    text = "Café ☕ is hot. It is."
    start = len("Café ☕ is hot. ".encode())
    meta = {"webSearchQueries": ["coffee"], "groundingChunks": [{"web": {"uri": "https://a.example/", "title": "a"}}],
            "groundingSupports": [{"segment": {"startIndex": start, "endIndex": len(text.encode())},
                                   "groundingChunkIndices": [0]}]}  # fmt: skip
    action, annotations = web_search.gemini_grounding(meta, text)
    assert action == {"type": "search", "query": "coffee", "sources": [{"type": "url", "url": "https://a.example/"}]}
    (cite,) = annotations
    assert text[cite["start_index"] : cite["end_index"]] == "It is."
    assert web_search.gemini_grounding({"groundingSupports": []}, text) == (None, [])


def test_the_builder_streams_a_search_and_citations_the_openai_types_accept() -> None:
    counter = itertools.count()
    b = ResponseBuilder({"id": "resp_1", "output": [], "tools": []}, lambda p: f"{p}_{next(counter)}")
    events = b.start() + b.web_search({"type": "search", "query": "q"}) + b.text("Hello")
    events += b.annotation(web_search.url_citation("https://a.example/", "A", 0, 5)) + b.finish()
    for e in events:
        construct_type(type_=ResponseStreamEvent, value=e.data)  # every event a known type
    kinds = [e.type for e in events]
    assert kinds[2:7] == ["response.output_item.added", "response.web_search_call.in_progress",
                          "response.web_search_call.searching", "response.web_search_call.completed",
                          "response.output_item.done"]  # fmt: skip
    added = next(e.data for e in events if e.type == "response.output_text.annotation.added")
    assert added["annotation_index"] == 0 and added["content_index"] == 0
    part_added = next(e.data for e in events if e.type == "response.content_part.added")
    assert part_added["part"]["annotations"] == []  # not the list the annotation went into later
    message = b.response["output"][1]
    assert message["content"][0]["annotations"][0]["url"] == "https://a.example/"


@pytest.mark.parametrize("support", [bedrock.SUPPORT, chat.SUPPORT])
def test_a_provider_without_search_names_the_tool_or_drops_it(support: object) -> None:
    tools = [{"type": "function", "name": "f"}, {"type": "web_search"}]
    with pytest.raises(errors.APIStatusError) as exc:
        strip_unsupported({"tools": list(tools)}, support, drop=False)  # type: ignore[arg-type]
    assert exc.value.status_code == 400 and exc.value.body["param"] == "tools[1]"
    assert "'web_search'" in exc.value.message
    params = {"tools": list(tools)}
    assert strip_unsupported(params, support, drop=True) == ["tools[1]"]  # type: ignore[arg-type]
    assert params["tools"] == tools[:1]
