"""AWS event-stream framing (`application/vnd.amazon.eventstream`): bytes in, frames out, and back.

A message is a 12-byte prelude (total length, headers length, the prelude's CRC32), typed
headers, a payload and the whole message's CRC32, all big-endian. Pure: no I/O.
"""

from __future__ import annotations

import struct
import zlib
from typing import NamedTuple

from ..streaming.sse import Frame

CONTENT_TYPE = "application/vnd.amazon.eventstream"
MAX_MESSAGE = 16 * 1024 * 1024 + 128 * 1024  # AWS caps a payload at 16 MiB and headers at 128 KiB
_PRELUDE = struct.Struct(">III")
# Header value types: fixed sizes, or None for a 2-byte length followed by that many bytes.
_FIXED = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}
_BYTES, _STRING = 6, 7


class FramingError(ValueError):
    """Bytes that are not an event-stream message (a bad length or CRC)."""


class Message(NamedTuple):
    headers: dict[str, str | bytes | int | bool]
    payload: bytes


class EventStreamDecoder:
    """Push decoder: `feed(chunk)` returns the messages completed by that chunk."""

    __slots__ = ("_buf", "_error")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._error: FramingError | None = None

    def feed(self, chunk: bytes) -> list[Message]:
        """The messages completed by `chunk`. Bad bytes raise FramingError, but only once the
        good messages before them (in this chunk) went out: the next call raises it."""
        if self._error is not None:
            raise self._error
        self._buf += chunk
        out: list[Message] = []
        try:
            while len(self._buf) >= _PRELUDE.size and (message := self._next()) is not None:
                out.append(message)
        except FramingError as exc:
            if not out:
                raise
            self._error = exc
        return out

    def _next(self) -> Message | None:
        total, headers_len, prelude_crc = _PRELUDE.unpack_from(self._buf)
        if zlib.crc32(self._buf[:8]) != prelude_crc:
            raise FramingError("event-stream prelude CRC mismatch")
        if total < 16 + headers_len or total > MAX_MESSAGE:
            raise FramingError(f"event-stream message length {total} is not valid")
        if len(self._buf) < total:
            return None
        raw = bytes(self._buf[:total])
        del self._buf[:total]
        (crc,) = struct.unpack_from(">I", raw, total - 4)
        if zlib.crc32(raw[:-4]) != crc:
            raise FramingError("event-stream message CRC mismatch")
        return Message(_headers(raw[12 : 12 + headers_len]), raw[12 + headers_len : -4])

    def finish(self) -> list[Message]:
        if self._error is not None:
            raise self._error
        if self._buf:
            raise FramingError(f"event-stream cut short ({len(self._buf)} bytes of a message)")
        return []


class FrameDecoder:
    """Event-stream messages as the relay's frames: an event is `Frame(event type, payload)`,
    an exception `Frame("exception:<type>", payload)`, an error `Frame("error:<code>", message)`."""

    __slots__ = ("_decoder",)

    def __init__(self) -> None:
        self._decoder = EventStreamDecoder()

    def feed(self, chunk: bytes) -> list[Frame]:
        return [frame(m) for m in self._decoder.feed(chunk)]

    def finish(self) -> list[Frame]:
        return [frame(m) for m in self._decoder.finish()]


def frame(message: Message) -> Frame:
    h = message.headers
    kind = h.get(":message-type", "event")
    if kind == "exception":
        return Frame(f"exception:{h.get(':exception-type', '')}", message.payload)
    if kind == "error":
        return Frame(f"error:{h.get(':error-code', '')}", str(h.get(":error-message", "")).encode())
    return Frame(str(h.get(":event-type", "")), message.payload)


def _headers(raw: bytes) -> dict[str, str | bytes | int | bool]:
    out: dict[str, str | bytes | int | bool] = {}
    i = 0
    try:
        while i < len(raw):
            n = raw[i]
            name = raw[i + 1 : i + 1 + n].decode()
            kind = raw[i + 1 + n]
            i += 2 + n
            if kind in (_BYTES, _STRING):
                (size,) = struct.unpack_from(">H", raw, i)
                value = raw[i + 2 : i + 2 + size]
                out[name] = value.decode() if kind == _STRING else value
                i += 2 + size
            elif kind in _FIXED:
                size = _FIXED[kind]
                out[name] = kind == 0 if kind < 2 else int.from_bytes(raw[i : i + size], "big", signed=kind < 8)
                i += size
            else:
                raise FramingError(f"event-stream header type {kind} is not valid")
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise FramingError("event-stream headers are cut short") from exc
    return out


def encode(headers: dict[str, str], payload: bytes) -> bytes:
    """One message with string headers (all AWS's event headers are strings)."""
    raw = b"".join(
        bytes([len(k)]) + k.encode() + bytes([_STRING]) + struct.pack(">H", len(v.encode())) + v.encode()
        for k, v in headers.items()
    )
    total = 16 + len(raw) + len(payload)
    prelude = struct.pack(">II", total, len(raw))
    body = prelude + struct.pack(">I", zlib.crc32(prelude)) + raw + payload
    return body + struct.pack(">I", zlib.crc32(body))


def event(event_type: str, payload: bytes) -> bytes:
    return encode({":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}, payload)


def exception(exception_type: str, payload: bytes) -> bytes:
    headers = {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"}
    return encode(headers, payload)
