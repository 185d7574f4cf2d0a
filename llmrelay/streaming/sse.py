"""Pure SSE framing: bytes in, frames out (and back). No I/O."""

from __future__ import annotations

from typing import NamedTuple


class Frame(NamedTuple):
    event: str | None
    data: bytes


class SSEDecoder:
    """Push decoder: `feed(chunk)` returns the frames completed by that chunk."""

    __slots__ = ("_buf", "_data", "_event")

    def __init__(self) -> None:
        self._buf = b""
        self._event: str | None = None
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[Frame]:
        buf = self._buf + chunk
        lines = buf.split(b"\n")
        self._buf = lines.pop()
        frames: list[Frame] = []
        for line in lines:
            self._line(line[:-1] if line.endswith(b"\r") else line, frames)
        return frames

    def finish(self) -> list[Frame]:
        frames: list[Frame] = []
        if self._buf:
            self._line(self._buf, frames)
            self._buf = b""
        self._line(b"", frames)
        return frames

    def _line(self, line: bytes, out: list[Frame]) -> None:
        if not line:
            if self._data:
                out.append(Frame(self._event, b"\n".join(self._data)))
            self._event, self._data = None, []
        elif line.startswith(b"data:"):
            self._data.append(line[6:] if line[5:6] == b" " else line[5:])
        elif line.startswith(b"event:"):
            self._event = line[6:].strip().decode()
        # "id:", "retry:" and ":" comments carry nothing the Responses grammar uses.


def encode(event: str, data: bytes) -> bytes:
    """One frame as OpenAI writes it: an `event:` line, a `data:` line, a blank line."""
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
