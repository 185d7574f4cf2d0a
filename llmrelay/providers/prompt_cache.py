"""Automatic prompt caching for the providers that cache only where a request marks it:
Claude's Messages body (Anthropic, Vertex AI, Bedrock's InvokeModel) and Bedrock's Converse.

OpenAI and Gemini cache a repeated prefix by themselves. Claude caches the prefix (tools, then
system, then messages) up to each block marked `cache_control: {"type": "ephemeral"}` (Converse:
a `{"cachePoint": {"type": "default"}}` block after it), at most 4 marks per request; a later
request reads the longest cached prefix ending at one of its own marks or up to 20 blocks
before one. So llmrelay marks what stays the same from one turn to the next:

- the end of the tools, and the end of the system prompt (instructions);
- the end of the earlier turns (the message before the newest one): a `previous_response_id`
  chain replayed from the store, or a history resent in full each turn, is read back;
- the newest message: what this request adds is written, so that the next turn reads it too.

A request that carries a mark of its own (`cache_control` anywhere, a `cachePoint`) is left as
the client made it. A mark on a prefix under MIN_BYTES of JSON is left out: no Claude model
caches fewer than 1024 tokens and a token covers at least one byte, so it would change nothing
(and small requests stay as they were). Off: `prompt_caching: false` (Call.caches_prompts).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from .base import Call

Json = dict[str, Any]
MAX_MARKS = 4  # Anthropic's and Bedrock's limit per request
MIN_BYTES = 1024
EPHEMERAL: Json = {"type": "ephemeral"}
CACHE_POINT: Json = {"cachePoint": {"type": "default"}}
_UNMARKABLE = frozenset({"thinking", "redacted_thinking"})  # Claude refuses cache_control on these
# Bedrock caches for Claude 3.5 Haiku, 3.7 Sonnet and later, and Amazon Nova; older Claude refuse a cachePoint.
_OLD_CLAUDE = re.compile(r"claude-(v2|instant|3-(haiku|sonnet|opus)|3-5-sonnet)")


def bedrock_caches(model: str) -> tuple[bool, bool]:
    """(caches at all, caches tools) for a Bedrock model id, inference profile or ARN."""
    name = model.rsplit("/", 1)[-1]
    if "claude" in name:
        return not _OLD_CLAUDE.search(name), True
    return "amazon.nova" in name, False  # Nova caches system and messages, not tools


class _Prefix:
    """The running size of the prefix in JSON bytes, measured only until it passes MIN_BYTES."""

    def __init__(self) -> None:
        self.size = 0

    def add(self, value: Any) -> bool:
        """Grow by `value`; True once the prefix is long enough to be worth a mark."""
        if self.size < MIN_BYTES:
            self.size += len(orjson.dumps(value))
        return self.size >= MIN_BYTES


# -- Claude's Messages body ------------------------------------------------------------------


def mark_messages(body: Json, call: Call) -> None:
    """Add cache_control marks to a Messages body (in place; the caller's objects are copied,
    never changed)."""
    if not call.caches_prompts or _has_cache_control(body):
        return
    if call.deployment.provider.api == "bedrock" and not bedrock_caches(call.deployment.model)[0]:
        return
    prefix = _Prefix()
    if (tools := body.get("tools")) and prefix.add(tools):
        body["tools"] = [*tools[:-1], {**tools[-1], "cache_control": EPHEMERAL}]
    system = body.get("system")
    if isinstance(system, str) and system and prefix.add(system):
        body["system"] = [{"type": "text", "text": system, "cache_control": EPHEMERAL}]
    elif isinstance(system, list) and system and prefix.add(system):
        body["system"] = _marked_blocks(system) or system
    messages = list(body.get("messages") or [])
    for n, message in enumerate(messages):
        # the end of the earlier turns, and the newest message
        if prefix.add(message) and n >= len(messages) - 2 and isinstance(message, dict):
            content = message.get("content")
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            if isinstance(blocks, list) and (marked := _marked_blocks(blocks)):
                messages[n] = {**message, "content": marked}
    if messages:
        body["messages"] = messages


def _marked_blocks(blocks: list[Any]) -> list[Any] | None:
    """`blocks` with its last markable block marked; None when none can carry a mark."""
    for i in range(len(blocks) - 1, -1, -1):
        block = blocks[i]
        if not isinstance(block, dict) or block.get("type") in _UNMARKABLE:
            continue
        if block.get("type") == "text" and not block.get("text"):
            continue  # an empty text block cannot be cached
        return [*blocks[:i], {**block, "cache_control": EPHEMERAL}, *blocks[i + 1 :]]
    return None


def _has_cache_control(body: Json) -> bool:
    if "cache_control" in body:
        return True
    system = body.get("system")
    groups: list[Any] = [body.get("tools"), system if isinstance(system, list) else None]
    groups += [m.get("content") for m in body.get("messages") or [] if isinstance(m, dict)]
    return any(_any_marked(g) for g in groups if isinstance(g, list))


def _any_marked(blocks: list[Any]) -> bool:
    for block in blocks:
        if isinstance(block, dict):
            if "cache_control" in block:
                return True
            if isinstance(block.get("content"), list) and _any_marked(block["content"]):  # a tool_result's
                return True
    return False


# -- Bedrock Converse ------------------------------------------------------------------------


def mark_converse(body: Json, call: Call) -> None:
    """Add cachePoint blocks to a Converse body (in place; the caller's objects are copied)."""
    caches, tools_too = bedrock_caches(call.deployment.model)
    if not call.caches_prompts or not caches or _has_cache_point(body):
        return
    prefix = _Prefix()
    config = body.get("toolConfig")
    # Nova caches no tools, but they are still part of the prefix
    if isinstance(config, dict) and (tools := config.get("tools")) and prefix.add(tools) and tools_too:
        body["toolConfig"] = {**config, "tools": [*tools, CACHE_POINT]}
    if (system := body.get("system")) and prefix.add(system):
        body["system"] = [*system, CACHE_POINT]
    messages = list(body.get("messages") or [])
    for n, message in enumerate(messages):
        if prefix.add(message) and n >= len(messages) - 2 and message.get("content"):
            messages[n] = {**message, "content": [*message["content"], CACHE_POINT]}
    if messages:
        body["messages"] = messages


def _has_cache_point(body: Json) -> bool:
    groups: list[Any] = [(body.get("toolConfig") or {}).get("tools"), body.get("system")]
    groups += [m.get("content") for m in body.get("messages") or [] if isinstance(m, dict)]
    return any(isinstance(b, dict) and "cachePoint" in b for g in groups if isinstance(g, list) for b in g)
