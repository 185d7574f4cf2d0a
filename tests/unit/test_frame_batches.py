"""A translator's batch path (`feed_frames`, taken when the consumer writes SSE itself) must write,
for any chunking, exactly the bytes the frame-by-frame path writes: every golden stream whose
translator has one, and generated Anthropic streams with odd frames among their text deltas."""

from __future__ import annotations

import itertools

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay.gateway.produced import OutputCounter, in_runs
from llmrelay.providers.anthropic import Anthropic
from llmrelay.streaming.events import Run, StreamEvent
from llmrelay.streaming.sse import SSEDecoder, encode
from llmrelay.upstream import Garbled, translate, translate_frames
from tests.golden import harness

ANTHROPIC = next(c for c in harness.all_cases() if c.id == "anthropic/text_stream")
BATCHED = [c for c in harness.all_cases() if c.stream and hasattr(c.adapter.stream_translator(c.call()), "feed_frames")]


def _chunks(wire: bytes, cuts: list[int]) -> list[bytes]:
    edges = [0, *sorted(c for c in cuts if c < len(wire)), len(wire)]
    return [wire[a:b] for a, b in itertools.pairwise(edges) if b > a]


def _run(case: harness.Case, wire: bytes, cuts: list[int], batched: bool) -> tuple[bytes, object, float, int]:
    """The client's bytes, the final response, the output tokens counted, the Runs seen."""
    call = case.call()
    translator = case.adapter.stream_translator(call)
    decoder = getattr(case.adapter, "frame_decoder", SSEDecoder)()
    dep = call.deployment
    events: list[StreamEvent] = []
    try:  # as Relay._relay_stream: a frame that cannot be read fails the stream after what came before
        for chunk in _chunks(wire, cuts):
            frames = decoder.feed(chunk)
            if batched:
                events.extend(in_runs(translate_frames(translator, frames, dep)))
            else:
                events.extend(in_runs(e for f in frames for e in translate(translator, f, dep)))
        events += [e for f in decoder.finish() for e in translate(translator, f, dep)] + translator.finish()
    except Garbled as exc:
        events += translator.fail(str(exc))
    counter = OutputCounter()
    for e in events:
        counter.see(e)
    runs = sum(isinstance(e, Run) for e in events)
    return b"".join(e.sse() for e in events), translator.response, counter.tokens, runs


def _same_either_way(case: harness.Case, wire: bytes, cuts: list[int]) -> None:
    by_frame = _run(case, wire, cuts, batched=False)
    by_batch = _run(case, wire, cuts, batched=True)
    assert by_batch[:3] == by_frame[:3]


@pytest.mark.parametrize("case", BATCHED, ids=lambda c: c.id)
@pytest.mark.parametrize("step", [None, 1, 7, 64, 300])
def test_golden_streams_write_the_same_bytes_batched(case: harness.Case, step: int | None) -> None:
    wire = case.upstream_response_path.read_bytes()
    _same_either_way(case, wire, list(range(0, len(wire), step)) if step else [])


def test_the_batches_cover_the_anthropic_and_bedrock_invoke_goldens() -> None:
    assert {c.id.split("/")[0] for c in BATCHED} >= {"anthropic", "vertex_ai"}
    assert any(c.id == "anthropic/text_stream" for c in BATCHED)


def test_text_deltas_of_one_chunk_go_out_as_one_run() -> None:
    wire = ANTHROPIC.upstream_response_path.read_bytes()
    assert _run(ANTHROPIC, wire, [], batched=True)[3] >= 1
    call = ANTHROPIC.call()
    translator = Anthropic().stream_translator(call)
    frames = SSEDecoder().feed(wire)
    out = list(translator.feed_frames(frames))
    deltas = [e for e in out if isinstance(e, Run)]
    # every text delta but the first, which opens the text part (its events built through `feed`)
    assert len(deltas) == 1 and deltas[0].events == sum(f.event == "content_block_delta" for f in frames) - 1


def _event(kind: str, **fields: object) -> bytes:
    return encode(kind, orjson.dumps({"type": kind, **fields}))


def _text(text: str) -> bytes:
    return _event("content_block_delta", index=0, delta={"type": "text_delta", "text": text})


START = _event(
    "message_start",
    message={"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "claude",
             "usage": {"input_tokens": 3, "output_tokens": 1}},
)  # fmt: skip
ODD = st.sampled_from([
    _event("content_block_stop", index=0) + _event("content_block_start", index=1,
                                                   content_block={"type": "text", "text": "again"}),
    _event("content_block_delta", index=0, delta={"type": "text_delta", "text": 5}),
    _event("content_block_delta", index=0, delta={"type": "citations_delta", "citation": {"cited_text": "x"}}),
    _event("content_block_delta", index=0, delta="not a dict"),
    _event("content_block_delta", index=0),
    _event("ping"),
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"a"}}\ndata: {"more":1}\n\n',
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"no event line"}}\n\n',
    b"data: [DONE]\n\n",
    _event("error", error={"type": "overloaded_error", "message": "Overloaded"}),
])  # fmt: skip
END = _event("content_block_stop", index=0) + _event("message_delta", delta={"stop_reason": "end_turn"},
                                                     usage={"output_tokens": 9}) + _event("message_stop")  # fmt: skip


@settings(max_examples=300, derandomize=True)
@given(
    texts=st.lists(st.text(max_size=20), max_size=40),
    odd=st.lists(st.tuples(st.integers(0, 40), ODD), max_size=3),
    cuts=st.lists(st.integers(0, 6000), max_size=6),
    opened=st.booleans(),
)
def test_any_anthropic_stream_writes_the_same_bytes_batched(
    texts: list[str], odd: list[tuple[int, bytes]], cuts: list[int], opened: bool
) -> None:
    frames = [_text(t) for t in texts]
    for at, frame in odd:
        frames.insert(at, frame)
    block = _event("content_block_start", index=0, content_block={"type": "text", "text": ""}) if opened else b""
    wire = START + block + b"".join(frames) + END
    _same_either_way(ANTHROPIC, wire, cuts)
