"""Compaction: `POST /v1/responses/compact` for every provider.

Native upstreams that offer it compact themselves. Otherwise llmrelay asks the same model for
a summary of the conversation and returns OpenAI's shape: every user message, then one
`compaction` item whose `encrypted_content` carries the summary in llmrelay's own envelope.
When such an item comes back as input, on any provider, it is expanded into a developer
message holding the summary.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

Json = dict[str, Any]
ENVELOPE = "llmrelay-compaction.v1:"
SUMMARY_PROMPT = (
    "Summarize the conversation so far for your own later use: keep every fact, decision, open "
    "question, tool result and user preference needed to continue it. Write only the summary."
)
SUMMARY_HEADER = "Summary of the earlier conversation:\n"


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
