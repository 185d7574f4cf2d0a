"""The router's settings, as plain data: what `router_settings` (and the same keys of
`litellm_settings`) configure, or what `llmrelay.Router(...)` takes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    routing_strategy: str = "simple-shuffle"
    num_retries: int = 0
    retry_policy: Mapping[str, int] = field(default_factory=dict)
    retry_after: float = 0.0
    # group name -> the groups to try, in order, once the group's own retries are spent
    fallbacks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    default_fallbacks: tuple[str, ...] = ()
    context_window_fallbacks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    content_policy_fallbacks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    max_fallbacks: int = 5
    allowed_fails: int = 3
    allowed_fails_policy: Mapping[str, int] = field(default_factory=dict)
    cooldown_time: float = 5.0
    disable_cooldowns: bool = False
    default_max_parallel_requests: int | None = None
    mid_stream_fallback: bool = True  # a stream that breaks goes on elsewhere (False: it fails)
    redis_url: str | None = None  # cooldowns and usage shared by every instance

    def fallbacks_for(self, *names: str, kind: str = "general") -> tuple[str, ...]:
        """The fallback groups for the first of `names` that has some (the requested name, then
        the group it resolved to); general failures also take `default_fallbacks`."""
        if kind == "context_window":
            lists = self.context_window_fallbacks
        elif kind == "content_policy":
            lists = self.content_policy_fallbacks
        else:
            lists = self.fallbacks
        for name in names:
            if found := lists.get(name):
                return found
        return self.default_fallbacks if kind == "general" else ()


def fallback_table(entries: Any) -> dict[str, tuple[str, ...]]:
    """LiteLLM's `[{"gpt-4o": ["claude", "gemini"]}, ...]` as a mapping."""
    table: dict[str, tuple[str, ...]] = {}
    for entry in entries or ():
        for name, targets in dict(entry).items():
            table[str(name)] = tuple([targets] if isinstance(targets, str) else targets)
    return table
