"""LiteLLM's durations ("30s", "15m", "1h", "1d", "30d", "1w", "1mo") and budget windows."""

from __future__ import annotations

import functools
import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "mo": 30 * 86400}
_DURATION = re.compile(r"(\d+)(mo|s|m|h|d|w)")


@functools.lru_cache(maxsize=256)  # the budget check reads a key's budget_duration on every call
def seconds(text: str) -> int:
    """A duration in seconds; ValueError naming the accepted forms for anything else."""
    match = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None or int(match[1]) == 0:
        raise ValueError(f"{text!r} is not a duration: use a positive whole number and a unit, e.g. 30s, 15m, 1h, 30d")
    return int(match[1]) * _UNITS[match[2]]


def window_start(created_at: float, duration: int | None, now: float) -> int:
    """The start of the budget window `now` falls in: windows of `duration` seconds run back to
    back from `created_at`, so a budget resets every `duration`; 0 for a budget that never resets."""
    if not duration:
        return 0
    return int(created_at + (now - created_at) // duration * duration)
