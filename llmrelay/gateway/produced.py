"""What a call produced when it ended without the usage its provider would have reported: a
stream cut short (the client left, a job was cancelled, a process stopped its work) or a stream
that failed before the provider's final usage. Providers bill those tokens all the same, so
they are charged, estimated at ~4 characters a token (the ratio providers quote for English text).

Input is the text of the instructions, the replayed history, this turn's input and the tools;
images and files are not counted (their size says nothing of their tokens), nor is history the
upstream keeps itself (a native continuation). Output is counted as the stream went by: a
translated delta's characters, or one token per native delta (OpenAI streams a token a delta;
counting them costs nothing, where reading each one would parse every frame).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

from ..providers.base import Call, usage
from ..streaming.events import CHARS_PER_TOKEN, Run, StreamEvent

# String fields that carry no text the model reads as tokens: ids, enums, binary payloads.
_NOT_TEXT = frozenset({
    "type", "id", "call_id", "role", "status", "detail", "format", "mime_type",
    "image_url", "file_data", "file_url", "file_id", "encrypted_content",
})  # fmt: skip


def text_chars(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(text_chars(v) for k, v in value.items() if k not in _NOT_TEXT)
    if isinstance(value, list):
        return sum(text_chars(v) for v in value)
    return 0


def input_estimate(call: Call) -> int:
    params = call.params
    chars = text_chars(params.get("instructions")) + text_chars(call.context)
    chars += text_chars(params.get("input")) + text_chars(params.get("tools"))
    return math.ceil(chars / CHARS_PER_TOKEN)


def estimated_usage(call: Call, output_tokens: float) -> dict[str, Any]:
    return {**usage(input_estimate(call), math.ceil(output_tokens)), "estimated": True}


class OutputCounter:
    """Output tokens of a stream as it passes, for a stream that ends without its usage."""

    __slots__ = ("tokens",)

    def __init__(self) -> None:
        self.tokens = 0.0

    def see(self, event: StreamEvent) -> bool:
        """Count what a stream event carries of output; whether it was output (a `*.delta`
        event, or a Run holding some)."""
        if isinstance(event, Run):
            self.tokens += event.tokens
            return event.tokens > 0
        if not event.type.endswith(".delta"):
            return False
        if "audio" in event.type:  # audio is billed by its own tokens, which its deltas don't tell
            return True
        data = event.parsed
        if data is None:  # a native frame, forwarded unparsed
            self.tokens += 1
        elif isinstance(delta := data.get("delta"), str):
            self.tokens += len(delta) / CHARS_PER_TOKEN
        return True


def in_runs(events: Iterable[StreamEvent]) -> Iterator[StreamEvent]:
    """Events for a consumer that writes SSE itself (`Call.sse_runs`): each stretch before a
    terminal event as one Run, so the layers above handle one object per upstream chunk, not
    one per event. What came before a failure still goes out before it."""
    stretch: list[StreamEvent] = []
    try:
        for event in events:
            if event.terminal:
                if stretch:
                    yield _run(stretch)
                    stretch = []
                yield event
            else:
                stretch.append(event)
    except Exception:
        if stretch:
            yield _run(stretch)
        raise
    if stretch:
        yield _run(stretch)


def _run(stretch: list[StreamEvent]) -> Run:
    if len(stretch) == 1 and isinstance(run := stretch[0], Run):
        return run  # a native chunk's plain frames, a Run already: not copied again
    counter = OutputCounter()
    for event in stretch:
        counter.see(event)
    return Run(b"".join(e.sse() for e in stretch), sum(e.events for e in stretch), counter.tokens)
