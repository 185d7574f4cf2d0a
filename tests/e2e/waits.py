"""Waiting in e2e tests: for a condition polled from outside, or for a stream's last event."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")
TERMINAL = ("response.completed", "response.failed", "response.incomplete", "error")


def wait_for(fn: Callable[[], T], predicate: Callable[[T], bool], timeout: float = 15.0) -> T:
    """Call `fn` until `predicate` holds for its value or `timeout` passes; the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if predicate(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def finished(retrieve: Callable[[], T], timeout: float = 20.0) -> T:
    """Retrieve a background response until it is no longer queued or in progress."""
    deadline = time.monotonic() + timeout
    while (response := retrieve()).status in ("queued", "in_progress"):  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, "the background response never finished"
        time.sleep(0.05)
    return response


def until_done(conn: Iterable[Any]) -> list[Any]:
    """The events of one response on a WebSocket connection, through its terminal event."""
    events = []
    for event in conn:
        events.append(event)
        if event.type in TERMINAL:
            return events
    return events
