"""Runs, for a consumer that writes SSE itself (`Call.sse_runs`): a native stream's plain frames
forwarded in the bytes they came in must read, to a client, exactly as the frame-by-frame path
writes them, for any chunking, with lifecycle and error frames still read and deltas still
counted; any stream's events before a terminal one go up in one piece."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Iterator

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay.gateway.produced import OutputCounter, in_runs
from llmrelay.ids import new_id
from llmrelay.providers.base import Call
from llmrelay.providers.openai import NativeStream
from llmrelay.providers.registry import make_deployment
from llmrelay.proxy.app import _sse
from llmrelay.streaming.events import Run, StreamEvent
from llmrelay.streaming.sse import SSEDecoder, encode
from llmrelay.upstream import translate


def _call() -> Call:
    dep = make_deployment("openai/gpt-4o", api_key="sk-test")
    params = {"model": "openai/gpt-4o", "input": "hi", "stream": True}
    created = int(time.time())
    return Call(id="resp_ours", params=params, deployment=dep, input_items=[], created_at=created, new_id=new_id)


def _lifecycle(kind: str, seq: int) -> bytes:
    status = {"response.completed": "completed", "response.failed": "failed"}.get(kind, "in_progress")
    response = {"id": "resp_upstream", "object": "response", "status": status, "output": []}
    return encode(kind, orjson.dumps({"type": kind, "sequence_number": seq, "response": response}))


def _plain(kind: str, seq: int, text: str) -> bytes:
    return encode(kind, orjson.dumps({"type": kind, "sequence_number": seq, "delta": text}))


PLAIN = st.sampled_from(["response.output_text.delta", "response.output_item.added", "response.audio.delta"])
LIFECYCLE = st.sampled_from(["response.created", "response.in_progress", "response.completed"])
FRAMES = st.one_of(
    st.builds(_plain, PLAIN, st.integers(0, 99), st.text(max_size=12)),
    st.builds(_lifecycle, LIFECYCLE, st.integers(0, 99)),
    st.sampled_from([
        b"data: [DONE]\n\n",
        b'event: error\ndata: {"type":"error","message":"overloaded"}\n\n',
        b'data: {"type":"response.output_text.delta","delta":"no event line"}\n\n',
        b'event: response.output_text.delta\ndata: {"delta":"a"}\ndata: {"more":1}\n\n',
        b": keep-alive comment\n\n",
        b'event:response.output_text.delta\ndata:{"delta":"tight"}\n\n',
        b"\n",
    ]),
)  # fmt: skip


def _frames_path(wire: bytes, cuts: list[int]) -> tuple[list[StreamEvent], NativeStream]:
    stream, decoder, dep = NativeStream(_call()), SSEDecoder(), _call().deployment
    events: list[StreamEvent] = []
    for chunk in _chunks(wire, cuts):
        events += [e for f in decoder.feed(chunk) for e in translate(stream, f, dep)]
    events += [e for f in decoder.finish() for e in translate(stream, f, dep)]
    return events, stream


def _wire_path(wire: bytes, cuts: list[int]) -> tuple[list[StreamEvent], NativeStream]:
    stream = NativeStream(_call())
    events: list[StreamEvent] = []
    for chunk in _chunks(wire, cuts):
        events += stream.feed_wire(chunk)
    return events + stream.finish_wire(), stream


def _chunks(wire: bytes, cuts: list[int]) -> list[bytes]:
    edges = [0, *sorted(c for c in cuts if c < len(wire)), len(wire)]
    return [wire[a:b] for a, b in itertools.pairwise(edges) if b > a]


def _as_client_reads(events: list[StreamEvent]) -> list[tuple[str | None, bytes]]:
    decoder = SSEDecoder()
    body = b"".join(e.sse() for e in events)
    return [(f.event, f.data) for f in decoder.feed(body) + decoder.finish()]


@settings(max_examples=400, derandomize=True)
@given(frames=st.lists(FRAMES, max_size=25), crlf=st.booleans(), cuts=st.lists(st.integers(0, 3000), max_size=10))
def test_the_wire_path_reads_as_the_frame_path_for_any_chunking(
    frames: list[bytes], crlf: bool, cuts: list[int]
) -> None:
    wire = b"".join(frames)
    if crlf:
        wire = wire.replace(b"\n", b"\r\n")
    _reads_the_same_either_way(wire, cuts)


# Long stretches of plain frames in big chunks, as a fast upstream sends them: the wire path
# checks such a chunk a line kind at a time, not frame by frame. Now and then a frame that
# is not plain in some way (a name with odd spacing, a second data line, no event line).
ODD = st.sampled_from([
    b"event: response.output_text.delta \ndata: {}\n\n",
    b"event:  response.created\ndata: {}\n\n",
    b"event: response.output_text.delta\tx\ndata: {}\n\n",
    b'event: response.output_text.delta\ndata: {"delta":"a"}\ndata: {"more":1}\n\n',
    b'data: {"type":"response.output_text.delta","delta":"no event line"}\n\n',
    b"event: response.audio.delta\ndata: {}\n\n",
    b"event: error\ndata: {\"type\":\"error\",\"message\":\"overloaded\"}\n\n",
])  # fmt: skip
BULK = st.one_of(
    st.builds(_plain, PLAIN, st.integers(0, 99), st.text(max_size=40)),
    st.builds(_plain, PLAIN, st.integers(0, 99), st.text(max_size=40)),
    st.builds(_lifecycle, LIFECYCLE, st.integers(0, 99)),
)


@settings(max_examples=300, derandomize=True)
@given(
    frames=st.lists(BULK, min_size=8, max_size=80),
    odd=st.lists(st.tuples(st.integers(0, 80), ODD), max_size=2),
    cuts=st.lists(st.integers(0, 20000), max_size=3),
)
def test_big_chunks_read_as_the_frame_path(frames: list[bytes], odd: list[tuple[int, bytes]], cuts: list[int]) -> None:
    for at, frame in odd:
        frames.insert(at, frame)
    _reads_the_same_either_way(b"".join(frames), cuts)


def _reads_the_same_either_way(wire: bytes, cuts: list[int]) -> None:
    by_frame, framed = _frames_path(wire, cuts)
    by_wire, wired = _wire_path(wire, cuts)
    assert _as_client_reads(by_wire) == _as_client_reads(by_frame)
    assert wired.response == framed.response  # the terminal event read, the upstream id swapped for ours
    assert wired.upstream_id == framed.upstream_id
    assert [e.type for e in by_wire if e.terminal] == [e.type for e in by_frame if e.terminal]
    counted, expected = OutputCounter(), OutputCounter()
    for e in by_wire:
        counted.see(e)
    for e in by_frame:
        expected.see(e)
    assert counted.tokens == expected.tokens


def test_plain_frames_of_a_chunk_go_out_as_one_run_of_their_own_bytes() -> None:
    deltas = b"".join(_plain("response.output_text.delta", i, f"t{i}") for i in range(3, 43))
    wire = _lifecycle("response.created", 0) + _lifecycle("response.in_progress", 1) + deltas
    wire += _lifecycle("response.completed", 43)
    stream = NativeStream(_call())
    events = [*stream.feed_wire(wire[:-5]), *stream.feed_wire(wire[-5:])]
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "llmrelay.run",
        "response.completed",
    ]
    run = events[2]
    assert isinstance(run, Run) and run.sse() == deltas and run.tokens == 40 and run.events == 40
    assert events[0].data["response"]["id"] == "resp_ours"  # lifecycle events still rewritten
    assert stream.response is not None and stream.response["status"] == "completed"
    assert stream.upstream_id == "resp_upstream"


def test_a_frame_cut_across_chunks_waits_for_its_end() -> None:
    frame = _plain("response.output_text.delta", 0, "hello")
    stream = NativeStream(_call())
    assert list(stream.feed_wire(frame[:20])) == []
    (run,) = stream.feed_wire(frame[20:])
    assert run.sse() == frame


def test_events_before_a_terminal_one_go_up_as_one_run_carrying_their_tokens() -> None:
    events = [
        StreamEvent("response.created", {"type": "response.created"}),
        StreamEvent("response.output_text.delta", {"type": "response.output_text.delta", "delta": "abcdefgh"}),
        StreamEvent("response.output_text.delta", raw=b'{"delta":"native"}'),
        StreamEvent("response.completed", {"type": "response.completed"}),
        StreamEvent("response.output_text.delta", {"delta": "late"}),
    ]
    run, completed, tail = in_runs(events)
    assert isinstance(run, Run) and run.sse() == b"".join(e.sse() for e in events[:3])
    assert run.tokens == 8 / 4 + 1  # as the output counter reads each: characters, or a native token
    assert run.events == 3  # the error event a failure adds after it is numbered from these
    assert completed is events[3]  # terminal events stay events: the store and the stages read them
    assert isinstance(tail, Run) and tail.sse() == events[4].sse()


def test_what_came_before_a_failure_goes_up_before_it() -> None:
    def broken() -> Iterator[StreamEvent]:
        yield StreamEvent("response.created", {"type": "response.created"})
        raise ValueError("garbled")

    runs = in_runs(broken())
    assert next(runs).sse() == StreamEvent("response.created", {"type": "response.created"}).sse()
    with pytest.raises(ValueError, match="garbled"):
        next(runs)


async def test_an_error_after_a_run_is_numbered_after_every_event_the_run_held() -> None:
    async def events() -> AsyncIterator[StreamEvent]:
        yield Run(b"event: a\ndata: {}\n\n" * 3, events=3, tokens=0)
        raise RuntimeError("the store went away")

    written = [chunk async for chunk in _sse(events())]
    (error,) = SSEDecoder().feed(written[-1])
    assert error.event == "error" and orjson.loads(error.data)["sequence_number"] == 3


def test_a_run_alone_in_its_stretch_goes_up_as_it_is() -> None:
    run = Run(b"event: a\ndata: {}\n\n", events=1, tokens=1)
    (out,) = in_runs([run])
    assert out is run
