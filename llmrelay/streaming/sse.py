"""Pure SSE framing: bytes in, frames out (and back). No I/O."""

from __future__ import annotations

from itertools import repeat
from typing import NamedTuple


class Frame(NamedTuple):
    event: str | None
    data: bytes


_frame = tuple.__new__  # a Frame made straight from its tuple, not through NamedTuple's generated __new__


class SSEDecoder:
    """Push decoder: `feed(chunk)` returns the frames completed by that chunk."""

    __slots__ = ("_buf", "_data", "_event")

    def __init__(self) -> None:
        self._buf = b""
        self._event: str | None = None
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[Frame]:
        buf = self._buf + chunk if self._buf else chunk
        lines = buf.split(b"\n")
        self._buf = lines.pop()
        if b"\r" in buf:
            lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
        elif (
            len(lines) % 3 == 0
            and len(lines) >= 18  # six frames or more: below that the loop below costs less
            and self._event is None
            and not self._data
            and not self._buf
            and (plain := _plain(lines)) is not None
        ):
            return plain
        # The lines read in one loop, not a call each: a frame costs three lines.
        frames: list[Frame] = []
        event, data = self._event, self._data
        for line in lines:
            if not line:
                if data:
                    frames.append(_frame(Frame, (event, b"\n".join(data))))
                event, data = None, []
            elif line[:5] == b"data:":
                data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif line[:6] == b"event:":
                event = line[6:].strip().decode()
            # "id:", "retry:" and ":" comments carry nothing the Responses grammar uses.
        self._event, self._data = event, data
        return frames

    def finish(self) -> list[Frame]:
        rest, self._buf = self._buf, b""
        return self.feed(rest + b"\n\n") if rest else self.feed(b"\n")


_NAMES: dict[bytes, str] = {}  # "event:" lines seen, and their names: a stream repeats a few


def _plain(lines: list[bytes]) -> list[Frame] | None:
    """Whole frames that are each an "event:" line, one "data: " line and a blank line (what
    most streams send), read a line kind at a time, each test one pass in C; None otherwise."""
    events, data = lines[0::3], lines[1::3]
    # lines hold no newline, so "\nevent:" counts the lines that start so, once each
    if any(lines[2::3]) or (b"\n" + b"\n".join(events)).count(b"\nevent:") != len(events):
        return None
    if (b"\n" + b"\n".join(data)).count(b"\ndata: ") != len(data):
        return None
    names = list(map(_NAMES.get, events))
    if None in names:
        names = [_name(line) for line in events]
    return list(map(_frame, repeat(Frame), zip(names, [d[6:] for d in data], strict=True)))


def _name(line: bytes) -> str:
    name = line[6:].strip().decode()
    if len(_NAMES) < 256:
        _NAMES[line] = name
    return name


def encode(event: str, data: bytes) -> bytes:
    """One frame as OpenAI writes it: an `event:` line, a `data:` line, a blank line."""
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
