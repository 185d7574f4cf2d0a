"""The figures the reliability suite reports at the end of a run (see conftest.py)."""

from __future__ import annotations

from collections import Counter

ORDER = ("cells tried", "inputs tried", "faults injected", "responses checked", "5xx seen", "records lost")
COUNTS: Counter[str] = Counter({name: 0 for name in ORDER if name != "inputs tried"})


def add(name: str, n: int = 1) -> None:
    COUNTS[name] += n


def summary() -> str:
    names = [n for n in ORDER if n in COUNTS] + sorted(set(COUNTS) - set(ORDER))
    return ", ".join(f"{name} {COUNTS[name]}" for name in names)
