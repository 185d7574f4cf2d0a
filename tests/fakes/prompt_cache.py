"""Claude's prompt cache (Anthropic, Vertex AI, Bedrock) as the fakes account it.

A prompt is a sequence of blocks in the order the provider reads them: the tools, the system
prompt, then each message's content blocks. A block is marked when it carries ``cache_control``
(on Converse: when a ``cachePoint`` block follows it). For each request, as Anthropic documents:

- read: the longest cached prefix that ends at a marked block or at one of the LOOKBACK blocks
  before it ("up to 20 blocks before each breakpoint");
- write: the prefix up to the last marked block, past what was read, when it holds at least
  MINIMUM tokens (shorter prefixes are not cached, without an error); every marked prefix that
  long is cached (the prefix's identity is its content without the marks, and the model);
- the rest of the prompt is plain input: Anthropic's ``input_tokens`` excludes reads and writes.

Entries never expire here (Claude keeps them 5 minutes from their last use; tests take seconds).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

MINIMUM = 1024  # tokens (the fakes count words); Claude Sonnet's and Opus's minimum
LOOKBACK = 20
MAX_MARKS = 4


@dataclass(frozen=True, slots=True)
class Block:
    tokens: int
    content: Any  # what identifies the block: its JSON without the cache marks
    marked: bool = False


@dataclass(frozen=True, slots=True)
class Usage:
    uncached: int
    read: int
    written: int


class PromptCache:
    def __init__(self) -> None:
        self._prefixes: set[bytes] = set()

    def clear(self) -> None:
        self._prefixes.clear()

    def account(self, model: str, blocks: list[Block]) -> Usage:
        digest, total = hashlib.sha256(model.encode()).digest(), 0
        hashes: list[bytes] = []
        totals: list[int] = []
        for block in blocks:
            digest = hashlib.sha256(digest + orjson.dumps(block.content, option=orjson.OPT_SORT_KEYS)).digest()
            total += block.tokens
            hashes.append(digest)
            totals.append(total)
        marks = [i for i, block in enumerate(blocks) if block.marked]
        read = 0
        for mark in marks:
            hit = next((j for j in range(mark, max(mark - LOOKBACK, 0) - 1, -1) if hashes[j] in self._prefixes), None)
            if hit is not None:
                read = max(read, totals[hit])
        written = 0
        if marks and totals[marks[-1]] >= MINIMUM:
            written = max(totals[marks[-1]] - read, 0)
        self._prefixes.update(hashes[m] for m in marks if totals[m] >= MINIMUM)
        return Usage(total - read - written, read, written)


def unmarked(value: Any) -> Any:
    """A block without its ``cache_control`` (nested ones too: a tool_result's content)."""
    if isinstance(value, dict):
        return {k: unmarked(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [unmarked(v) for v in value]
    return value


def has_mark(value: Any) -> bool:
    if isinstance(value, dict):
        return "cache_control" in value or any(has_mark(v) for v in value.values())
    if isinstance(value, list):
        return any(has_mark(v) for v in value)
    return False


def count_marks(value: Any) -> int:
    if isinstance(value, dict):
        return ("cache_control" in value) + sum(count_marks(v) for v in value.values())
    if isinstance(value, list):
        return sum(count_marks(v) for v in value)
    return 0
