"""Input items: normalising what clients send, and preparing stored items for replay."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from .mcp.replay import as_function_items

Json = dict[str, Any]

_PREFIX = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "computer_call": "cu",
    "computer_call_output": "cuo",
    "reasoning": "rs",
    "custom_tool_call": "ctc",
    "custom_tool_call_output": "ctco",
}


def as_items(value: str | list[Any]) -> list[Json]:
    """`input` as a list of items: a bare string is one user message."""
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]
    return [dict(item) for item in value if isinstance(item, dict)]


def normalize(value: str | list[Any], new_id: Callable[[str], str]) -> list[Json]:
    """Input items as OpenAI lists them: typed, with ids and a status, content as parts."""
    out: list[Json] = []
    for item in as_items(value):
        kind = item.setdefault("type", "message" if "role" in item else "item")
        if kind == "message":
            content = item.get("content")
            if isinstance(content, str):
                part = "output_text" if item.get("role") == "assistant" else "input_text"
                item["content"] = [{"type": part, "text": content}]
            item.setdefault("status", "completed")
        if kind != "item_reference":
            item.setdefault("id", new_id(_PREFIX.get(kind, "item")))
        out.append(item)
    return out


# encrypted_content that llmrelay's translators wrote: another provider's reasoning state.
TRANSLATED_REASONING = ("anthropic:", "anthropic-redacted:", "gemini:")


def foreign_reasoning(item: Json) -> bool:
    """A reasoning item only a translated provider (not OpenAI) can use again."""
    return item.get("type") == "reasoning" and str(item.get("encrypted_content") or "").startswith(TRANSLATED_REASONING)


def replayable(items: list[Json]) -> list[Json]:
    """Stored items made safe to send to any upstream as plain input.

    Ids are dropped because they name items in the store of the upstream that minted them;
    another account would reject them. MCP calls become function calls with their output
    (the MCP listings and approvals are left out). Reasoning items without `encrypted_content` carry
    nothing another upstream can use; item references have nothing left to point at.
    """
    out: list[Json] = []
    for item in as_function_items(items):
        kind = item.get("type")
        if kind == "item_reference" or (kind == "reasoning" and not item.get("encrypted_content")):
            continue
        clean = copy.deepcopy(item)
        if kind != "reasoning":
            clean.pop("id", None)
        out.append(clean)
    return out
