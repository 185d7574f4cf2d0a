"""Compaction: `POST /v1/responses/compact` for every provider.

Native upstreams that offer it compact themselves. Otherwise llmrelay asks the same model for
a summary of the conversation and returns OpenAI's shape: every user message, then one
`compaction` item whose `encrypted_content` carries the summary in llmrelay's own envelope.
When such an item comes back as input, on any provider, it is expanded into a developer
message holding the summary.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import orjson

from . import items
from .ids import new_id

Json = dict[str, Any]
ENVELOPE = "llmrelay-compaction.v1:"
SUMMARY_PROMPT = (
    "Summarize the conversation so far for your own later use: keep every fact, decision, open "
    "question, tool result and user preference needed to continue it. Write only the summary."
)
SUMMARY_HEADER = "Summary of the earlier conversation:\n"


FIELDS = frozenset({"model", "input", "instructions", "previous_response_id", "prompt_cache_key"})


def summary_request(model: str, history: list[Json], options: Json) -> Json:
    """The create that asks the conversation's own model for its summary."""
    return {**options, "model": model, "input": history, "instructions": SUMMARY_PROMPT, "store": False}


def compacted(history: list[Json], summary: Json) -> Json:
    """OpenAI's compaction shape: every user message, then the compaction item."""
    text = "".join(
        part.get("text", "")
        for item in summary.get("output") or []
        if item.get("type") == "message"
        for part in item.get("content") or []
    )
    users = [i for i in items.normalize(history, new_id) if i.get("role") == "user"]
    return {
        "id": new_id("resp"),
        "object": "response.compaction",
        "created_at": int(time.time()),
        "output": [*users, compaction_item(text, new_id("cmp"))],
        "usage": summary.get("usage"),
    }


def compaction_item(summary: str, item_id: str) -> Json:
    envelope = base64.b64encode(orjson.dumps({"summary": summary})).decode()
    return {"id": item_id, "type": "compaction", "encrypted_content": ENVELOPE + envelope}


def expand(items: list[Json]) -> list[Json]:
    """llmrelay's compaction items as developer messages with their summary; others unchanged."""
    out = []
    for item in items:
        content = item.get("encrypted_content") if item.get("type") == "compaction" else None
        if isinstance(content, str) and content.startswith(ENVELOPE):
            summary = orjson.loads(base64.b64decode(content.removeprefix(ENVELOPE)))["summary"]
            text = SUMMARY_HEADER + summary
            out.append({"type": "message", "role": "developer", "content": [{"type": "input_text", "text": text}]})
        else:
            out.append(item)
    return out


def has_envelope(items: Any) -> bool:
    return isinstance(items, list) and any(
        isinstance(i, dict) and str(i.get("encrypted_content", "")).startswith(ENVELOPE) for i in items
    )
