"""The create route's stream writer: runs of ready chunks in one send, backpressure from a slow
client, and a client that leaves cancelling the stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.responses import StreamingResponse

from llmrelay.proxy.hot_route import WATCH_AFTER, _pump, _Writer, stream


class Sink:
    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.bodies: list[bytes] = []
        self.messages: list[dict[str, Any]] = []
        self.gate = gate  # when set, each body write waits for it: a client reading slowly

    async def send(self, message: dict[str, Any]) -> None:
        if self.gate is not None and message["type"] == "http.response.body" and message["body"]:
            await self.gate.wait()
        self.messages.append(message)
        if message.get("body"):
            self.bodies.append(message["body"])


async def test_chunks_ready_together_go_out_in_one_write_before_the_next_wait() -> None:
    sink = Sink()
    seen_before_wait: list[list[bytes]] = []

    async def chunks() -> AsyncIterator[bytes]:
        yield b"a"
        yield b"b"
        await asyncio.sleep(0.01)  # the upstream's next chunk is not there yet
        seen_before_wait.append(list(sink.bodies))
        yield b"c"
        yield b"d"

    tail = await _pump(chunks(), _Writer(sink.send))
    assert sink.bodies == [b"ab"]
    assert tail == b"cd"  # ready as the body ended: it goes out with the response's end
    assert seen_before_wait == [[b"ab"]]  # written before waiting, not held back


async def test_a_slow_client_stops_the_pull_until_it_catches_up() -> None:
    gate = asyncio.Event()
    sink = Sink(gate)
    pulled = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal pulled
        for i in range(5):
            pulled += 1
            yield b"%d" % i
            await asyncio.sleep(0)

    pump = asyncio.ensure_future(_pump(chunks(), _Writer(sink.send)))
    for _ in range(20):
        await asyncio.sleep(0)
    assert pulled <= 2 and not pump.done()  # one write waiting, nothing pulled far ahead of it
    gate.set()
    await pump
    assert b"".join(sink.bodies) == b"01234"


async def test_an_error_inside_the_stream_reaches_the_caller() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"a"
        await asyncio.sleep(0)
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await _pump(chunks(), _Writer(Sink().send))


async def test_a_client_that_leaves_cancels_the_stream() -> None:
    closed = asyncio.Event()
    left = asyncio.Event()

    async def chunks() -> AsyncIterator[bytes]:
        try:
            yield b"first"
            left.set()
            await asyncio.sleep(30)
            yield b"never"
        finally:
            closed.set()

    async def receive() -> dict[str, Any]:
        await left.wait()
        return {"type": "http.disconnect"}

    sink = Sink()
    await asyncio.wait_for(stream(StreamingResponse(chunks()), receive, sink.send), 5)
    assert closed.is_set()
    assert sink.bodies == [b"first"]
    assert not any(m["type"] == "http.response.body" and m.get("more_body") is False for m in sink.messages)


async def test_a_whole_stream_ends_with_the_closing_message_carrying_the_last_run() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"x"
        await asyncio.sleep(0)
        yield b"y"

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(30)
        return {"type": "http.disconnect"}

    sink = Sink()
    await stream(StreamingResponse(chunks()), receive, sink.send)
    assert sink.messages[0]["type"] == "http.response.start"
    assert sink.bodies == [b"x", b"y"]
    assert sink.messages[-1] == {"type": "http.response.body", "body": b"y", "more_body": False}  # one write


async def test_a_quick_stream_pays_no_watcher() -> None:
    """A stream done within WATCH_AFTER never asks whether the client left: no task, no receive."""
    asked = 0

    async def receive() -> dict[str, Any]:
        nonlocal asked
        asked += 1
        await asyncio.sleep(30)
        return {"type": "http.disconnect"}

    async def chunks() -> AsyncIterator[bytes]:
        yield b"one"

    sink = Sink()
    await stream(StreamingResponse(chunks()), receive, sink.send)
    await asyncio.sleep(WATCH_AFTER + 0.05)
    assert asked == 0
    assert sink.bodies == [b"one"]
