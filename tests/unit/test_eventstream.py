"""AWS event-stream framing: messages round-trip in any chunking, and damaged bytes are refused."""

from __future__ import annotations

import struct
import uuid
import zlib

import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer

from llmrelay.providers import eventstream
from llmrelay.providers.eventstream import EventStreamDecoder, FrameDecoder, FramingError

EVENTS = [
    eventstream.event("messageStart", b'{"role":"assistant"}'),
    eventstream.event("contentBlockDelta", b'{"contentBlockIndex":0,"delta":{"text":"Hi"}}'),
    eventstream.exception("throttlingException", b'{"message":"slow down"}'),
]


@pytest.mark.parametrize("size", [1, 3, 16, 1000])
def test_frames_survive_any_chunking(size: int) -> None:
    raw = b"".join(EVENTS)
    decoder = FrameDecoder()
    frames = [f for i in range(0, len(raw), size) for f in decoder.feed(raw[i : i + size])]
    assert decoder.finish() == []
    assert [f.event for f in frames] == ["messageStart", "contentBlockDelta", "exception:throttlingException"]
    assert frames[1].data == b'{"contentBlockIndex":0,"delta":{"text":"Hi"}}'


def test_an_error_message_carries_its_code_and_text() -> None:
    raw = eventstream.encode(
        {":message-type": "error", ":error-code": "InternalFailure", ":error-message": "boom"}, b""
    )
    assert FrameDecoder().feed(raw)[0] == ("error:InternalFailure", b"boom")


def _with_headers(headers: bytes, payload: bytes = b"{}") -> bytes:
    prelude = struct.pack(">II", 16 + len(headers) + len(payload), len(headers))
    body = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + payload
    return body + struct.pack(">I", zlib.crc32(body))


def _all_header_types(u: uuid.UUID) -> bytes:
    return (
        b"\x01t\x00" + b"\x01f\x01" + b"\x01b\x02\xff" + b"\x01s\x03\x00\x07" + b"\x01i\x04\x00\x00\x01\x00"
        + b"\x01l\x05" + (2**40).to_bytes(8, "big") + b"\x01y\x06\x00\x02ab" + b"\x01w\x07\x00\x02hi"
        + b"\x01d\x08" + (1_700_000_000_000).to_bytes(8, "big") + b"\x01u\x09" + u.bytes
    )  # fmt: skip


def test_every_header_type_decodes() -> None:
    u = uuid.uuid4()
    (message,) = EventStreamDecoder().feed(_with_headers(_all_header_types(u)))
    h = message.headers
    assert (h["t"], h["f"], h["b"], h["s"], h["i"], h["l"]) == (True, False, -1, 7, 256, 2**40)
    assert (h["y"], h["w"], h["d"], h["u"]) == (b"ab", "hi", 1_700_000_000_000, int.from_bytes(u.bytes, "big"))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda raw: raw[:8] + b"\x00\x00\x00\x00" + raw[12:], "prelude CRC"),
        (lambda raw: raw[:-6] + bytes([raw[-6] ^ 1]) + raw[-5:], "message CRC"),
        (lambda raw: _with_headers(b"\x01x\x0a"), "header type"),
        (lambda raw: _with_headers(b"\x05abc"), "cut short"),
    ],
)
def test_damaged_messages_are_refused(damage: object, reason: str) -> None:
    with pytest.raises(FramingError, match=reason) as info:
        EventStreamDecoder().feed(damage(EVENTS[1]))  # type: ignore[operator]
    assert isinstance(info.value, ValueError)  # upstream.frames makes it a failed stream naming the deployment


def test_a_stream_cut_mid_message_is_refused_at_the_end() -> None:
    decoder = EventStreamDecoder()
    assert decoder.feed(EVENTS[0][:-3]) == []
    with pytest.raises(FramingError, match="cut short"):
        decoder.finish()


def test_an_sse_body_is_not_taken_for_messages() -> None:
    with pytest.raises(FramingError):
        EventStreamDecoder().feed(b"data: <html><body>502 Bad Gateway</body></html>\n\n")


def test_good_messages_before_bad_bytes_in_one_chunk_still_come_out() -> None:
    decoder = EventStreamDecoder()
    messages = decoder.feed(EVENTS[0] + EVENTS[1] + b"data: [DONE]\n\n")
    assert [m.headers[":event-type"] for m in messages] == ["messageStart", "contentBlockDelta"]
    with pytest.raises(FramingError, match="prelude CRC"):
        decoder.finish()


def test_botocores_own_decoder_agrees() -> None:
    """botocore (what boto3 decodes Bedrock streams with) reads the same messages the same way."""
    u = uuid.uuid4()
    raw = b"".join(EVENTS) + _with_headers(_all_header_types(u), b'{"x":1}')
    buffer = EventStreamBuffer()
    buffer.add_data(raw)
    theirs = [(m.headers, m.payload) for m in buffer]
    ours = EventStreamDecoder().feed(raw)
    assert [p for _, p in theirs] == [m.payload for m in ours]
    for (their_headers, _), mine in zip(theirs, ours, strict=True):
        for name, value in their_headers.items():
            if name not in ("d", "u"):  # botocore gives a timestamp and a UUID as its own types
                assert mine.headers[name] == value, name
    damaged = EVENTS[1][:-6] + bytes([EVENTS[1][-6] ^ 1]) + EVENTS[1][-5:]
    buffer = EventStreamBuffer()
    buffer.add_data(damaged)
    with pytest.raises(ChecksumMismatch):
        list(buffer)
