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
