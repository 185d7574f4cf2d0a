"""The fakes' web search (Anthropic's server tool, Gemini's Google Search grounding), read by the
official SDKs: if their types take it, the wire shape is right."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import pytest
from anthropic import Anthropic
from anthropic.types import (
    CitationsWebSearchResultLocation,
    Message,
    ServerToolUseBlock,
    TextBlock,
    WebSearchResultBlock,
    WebSearchToolResultBlock,
)
from google import genai
from google.genai import types

from tests.fakes import FakeServer

SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 2, "allowed_domains": ["docs.python.org"],
          "user_location": {"type": "approximate", "city": "Paris", "country": "FR"}}  # fmt: skip
GOOGLE = types.GenerateContentConfig(tools=[types.Tool(google_search=types.GoogleSearch())])


@pytest.fixture
def claude(anthropic_fake: FakeServer) -> Iterator[Anthropic]:
    anthropic_fake.reset()
    with Anthropic(api_key="k", base_url=anthropic_fake.root, max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def google(gemini_fake: FakeServer) -> genai.Client:
    gemini_fake.reset()
    return genai.Client(api_key="k", http_options=types.HttpOptions(base_url=gemini_fake.root, api_version="v1beta"))


def check_search_message(message: Message) -> None:
    kinds = [b.type for b in message.content]
    assert kinds == ["text", "server_tool_use", "web_search_tool_result", "text", "text"]
    use, result, cited = message.content[1], message.content[2], message.content[3]
    assert isinstance(use, ServerToolUseBlock) and use.input == {"query": "python release"}
    assert isinstance(result, WebSearchToolResultBlock) and result.tool_use_id == use.id
    assert isinstance(result.content, list) and all(isinstance(r, WebSearchResultBlock) for r in result.content)
    assert all(r.url.startswith("https://docs.python.org/") and r.encrypted_content for r in result.content)
    assert isinstance(cited, TextBlock) and cited.text == "Echo (turns=1): python release"
    assert cited.citations and all(isinstance(c, CitationsWebSearchResultLocation) for c in cited.citations)
    assert [c.url for c in cited.citations] == [r.url for r in result.content]
    assert message.usage.server_tool_use is not None and message.usage.server_tool_use.web_search_requests == 1


def test_claude_searches_and_cites_in_a_message_and_a_stream(claude: Anthropic) -> None:
    ask = {"model": "claude-sonnet-4-6", "max_tokens": 200, "tools": [SEARCH],
           "messages": [{"role": "user", "content": "python release"}]}  # fmt: skip
    check_search_message(claude.messages.create(**ask))
    with claude.messages.stream(**ask) as stream:  # the SDK folds citations_delta into the text block
        check_search_message(stream.get_final_message())


def test_claude_refuses_a_search_tool_anthropic_would_refuse(claude: Anthropic) -> None:
    tool = {**SEARCH, "blocked_domains": ["example.com"]}
    with pytest.raises(anthropic.BadRequestError, match="both allowed_domains and blocked_domains"):
        claude.messages.create(model="claude-sonnet-4-6", max_tokens=100, tools=[tool],
                               messages=[{"role": "user", "content": "x"}])  # fmt: skip


def test_gemini_grounds_with_google_search_in_a_response_and_a_stream(google: genai.Client) -> None:
    response = google.models.generate_content(model="gemini-2.0-flash", contents="hello", config=GOOGLE)
    text = response.text or ""
    assert text == "Echo (turns=1): hello — café ☕. Two sources agree."
    grounding = response.candidates[0].grounding_metadata
    assert grounding is not None and grounding.web_search_queries == ["hello"]
    assert [c.web.title for c in grounding.grounding_chunks or [] if c.web] == ["example.com", "wikipedia.org"]
    supports = grounding.grounding_supports or []
    # Segments count UTF-8 bytes: the second sentence starts after "é" and "☕" took 2 and 3 bytes.
    second = supports[1].segment
    assert second is not None and second.start_index == len(text.encode()) - len(b"Two sources agree.")
    assert text.encode()[second.start_index : second.end_index].decode() == "Two sources agree."
    assert supports[0].segment is not None and supports[0].segment.start_index is None  # proto3 leaves 0 out
    chunks = list(google.models.generate_content_stream(model="gemini-2.0-flash", contents="hello", config=GOOGLE))
    assert "".join(c.text or "" for c in chunks) == text
    assert [c.candidates[0].grounding_metadata is not None for c in chunks][-2:] == [False, True]
