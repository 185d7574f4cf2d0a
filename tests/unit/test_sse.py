import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay.streaming.sse import Frame, SSEDecoder, encode


def test_frames_split_across_chunks_and_crlf() -> None:
    wire = b'event: a\r\ndata: {"x":1}\r\n\r\n: comment\nevent: b\ndata: line1\ndata: line2\n\n'
    decoder = SSEDecoder()
    frames: list[Frame] = []
    for i in range(len(wire)):  # worst case: one byte at a time
        frames += decoder.feed(wire[i : i + 1])
    frames += decoder.finish()
    assert frames == [Frame("a", b'{"x":1}'), Frame("b", b"line1\nline2")]


def test_data_without_event_line_and_unterminated_tail() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: [DONE]") == []
    assert decoder.finish() == [Frame(None, b"[DONE]")]


def test_encode_round_trips() -> None:
    raw = encode("response.created", b'{"a":1}')
    assert raw == b'event: response.created\ndata: {"a":1}\n\n'
    assert SSEDecoder().feed(raw) == [Frame("response.created", b'{"a":1}')]


def _reference(wire: bytes) -> list[Frame]:
    """The SSE grammar line by line, as the spec reads it (the subset the decoder keeps)."""
    frames, event, data = [], None, []
    for line in [*wire.replace(b"\r\n", b"\n").split(b"\n"), b""]:
        if not line:
            if data:
                frames.append(Frame(event, b"\n".join(data)))
            event, data = None, []
        elif line.startswith(b"data:"):
            data.append(line[6:] if line[5:6] == b" " else line[5:])
        elif line.startswith(b"event:"):
            event = line[6:].strip().decode()
    return frames


# the common frame's lines twice, so whole frames come often
COMMON = [b"", b"event: a", b"data: {}"]
LINES = st.sampled_from(
    [*COMMON, *COMMON, b"event:b", b"event:  c\t", b"data:x", b"data: ", b": hi", b"id: 3", b"data: \xc3\xa9"]
)


@settings(max_examples=600, derandomize=True)
@given(lines=st.lists(LINES, max_size=30), crlf=st.booleans(), cuts=st.lists(st.integers(0, 400), max_size=8))
def test_any_chunking_gives_the_frames_of_the_line_by_line_grammar(
    lines: list[bytes], crlf: bool, cuts: list[int]
) -> None:
    wire = (b"\r\n" if crlf else b"\n").join(lines) + b"\n"
    decoder, frames, start = SSEDecoder(), [], 0
    for cut in sorted(c for c in cuts if c <= len(wire)):
        frames += decoder.feed(wire[start:cut])
        start = cut
    frames += decoder.feed(wire[start:]) + decoder.finish()
    assert frames == _reference(wire)


def test_a_long_frame_in_small_pieces_is_read_as_it_comes() -> None:
    decoder = SSEDecoder()
    payload = b"data: " + b"x" * 200_000 + b"\n\n"
    frames = [f for i in range(0, len(payload), 1000) for f in decoder.feed(payload[i : i + 1000])]
    assert frames == [Frame(None, b"x" * 200_000)]


@pytest.mark.parametrize(
    "odd",
    [
        b": hi\ndata: {}\n\n",
        b"id: 3\ndata: {}\n\n",
        b"data: a\ndata: b\n\n",
        b"event: a\nevent: b\n\n",
        b"event: a\ndata: {}\nid: 1\n",  # no blank line: the frame goes on
    ],
)
def test_frames_of_three_lines_that_are_not_event_and_data_read_as_the_grammar_says(odd: bytes) -> None:
    plain = b'event: a\ndata: {"x":1}\n\n'
    for wire in (odd, plain * 3 + odd + plain * 3, odd * 8, plain * 7 + odd):  # six frames and more: read at once
        decoder = SSEDecoder()
        assert decoder.feed(wire) + decoder.finish() == _reference(wire)


@settings(max_examples=200, derandomize=True)
@given(
    frames=st.lists(st.sampled_from([b"event: a\ndata: {}\n\n", b"event:b\ndata: \n\n"]), min_size=6, max_size=40),
    odd=st.lists(st.tuples(st.integers(0, 40), LINES), max_size=2),
)
def test_big_chunks_of_whole_frames_read_as_the_grammar_says(frames: list[bytes], odd: list[tuple[int, bytes]]) -> None:
    for at, line in odd:
        frames.insert(at, line + b"\n")
    wire = b"".join(frames)
    decoder = SSEDecoder()
    assert decoder.feed(wire) + decoder.finish() == _reference(wire)
