"""`mock_response=` and the `mock/` provider: a full Response (or stream) with no network.

Driven through the same ResponseBuilder as every translated provider, so a mocked stream
has exactly the grammar, ids and final object of a real one.
"""

from __future__ import annotations

import re

from ..streaming.builder import ResponseBuilder
from ..streaming.events import StreamEvent
from .base import Call, response_skeleton, usage


def mock_events(call: Call, text: str) -> tuple[list[StreamEvent], dict]:
    """Every event of a response whose answer is `text`, and the final Response object."""
    builder = ResponseBuilder(response_skeleton(call), call.new_id)
    events = builder.start()
    for piece in re.findall(r"\S+\s*|\s+", text) or [""]:
        events += builder.text(piece)
    events += builder.finish(usage=usage(input_tokens(call), len(text.split())))
    return events, builder.response


def input_tokens(call: Call) -> int:
    """A deterministic estimate, one token a word of everything the call sends (instructions,
    replayed history, this turn), the same number a create reports as its usage."""
    words = len(str(call.params.get("instructions") or "").split())
    words += sum(len(_text(item).split()) for item in call.context + call.input_items)
    return max(words, 1)


def echo_text(call: Call) -> str:
    """The `mock/` provider's deterministic answer when no mock_response is given: it names
    itself, counts the user turns it was given (so chaining shows) and echoes the last one."""
    turns = [i for i in call.context + call.input_items if i.get("type") == "message" and i.get("role") == "user"]
    said = _text(turns[-1]) if turns else ""
    return f"[llmrelay demo model, not an LLM] Turn {len(turns)}. You said: {said}"


def _text(item: dict) -> str:
    parts = item.get("content") or []
    return " ".join(p.get("text", "") for p in parts if isinstance(p, dict))
