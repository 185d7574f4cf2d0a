"""Per-call options as callers give them: the first one set wins, timeouts in any shape."""

from __future__ import annotations

from typing import Any


def seconds(timeout: Any) -> float | None:
    """A float, or an httpx-style Timeout (its read timeout), as seconds."""
    if timeout is None or isinstance(timeout, (int, float)):
        return timeout
    value = getattr(timeout, "read", None) or getattr(timeout, "connect", None)
    return float(value) if value is not None else None


def first_bool(*values: Any) -> bool:
    return next((bool(v) for v in values if v is not None), False)


def first_int(*values: Any) -> int:
    for v in values:
        if isinstance(v, int) and not isinstance(v, bool):
            return max(0, v)
    return 0
