"""Native adapter: upstreams that speak `/v1/responses` (OpenAI, Azure, xAI, OpenRouter, vLLM, Ollama).

The request reaches the upstream as the client wrote it; only `model`, `previous_response_id`
(our id -> the upstream's, or replayed history) and `extra_body` change. Streams pass through
at the byte level: only lifecycle events are parsed, to swap the upstream's response id for
ours and to capture the final response for the store. Deltas are forwarded untouched.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from itertools import repeat
from urllib.parse import urlencode

import orjson

from .. import errors, items
from ..streaming.events import LIFECYCLE, TERMINAL, Run, StreamEvent
from ..streaming.sse import Frame, SSEDecoder
from ..transport import HttpRequest, openai_error
from .base import Call, Json, response_skeleton
from .registry import Deployment

COUNT_FIELDS = frozenset(
    {"model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "reasoning", "text",
     "truncation", "previous_response_id", "conversation"}
)  # fmt: skip


class OpenAIResponses:
    """Adapter for native Responses upstreams."""

    def build_request(self, call: Call) -> HttpRequest:
        body = dict(call.params)
        body["model"] = call.deployment.model
        body.pop("previous_response_id", None)
        if call.conversation_id:  # llmrelay's own conversation: its items come as context instead
            body.pop("conversation", None)
        if call.upstream_previous_id:
            body["previous_response_id"] = call.upstream_previous_id
        elif call.context:
            context = [i for i in call.context if not items.foreign_reasoning(i)]
            body["input"] = context + items.as_items(body.get("input") or [])
        body.update(call.extra_body)
        headers = {"content-type": "application/json", **call.deployment.auth_headers()}
        if call.stream:
            headers["accept"] = "text/event-stream"
        headers.update(call.extra_headers)
        url = _with_query(call.deployment.url("/responses"), call.extra_query)
        return HttpRequest("POST", url, headers, orjson.dumps(body), call.deployment.credentials)

    def compact_request(self, call: Call) -> HttpRequest:
        req = self.build_request(call)
        return replace(req, url=_with_query(call.deployment.url("/responses/compact"), call.extra_query))

    def count_request(self, call: Call) -> HttpRequest:
        req = self.build_request(call)
        body = {k: v for k, v in orjson.loads(req.body or b"{}").items() if k in COUNT_FIELDS}
        return replace(req, url=call.deployment.url("/responses/input_tokens"), body=orjson.dumps(body))

    def parse_count(self, body: bytes) -> int:
        return int(orjson.loads(body)["input_tokens"])

    def parse_response(self, body: bytes, call: Call) -> tuple[Json, str | None]:
        response = orjson.loads(body)
        if not isinstance(response, dict) or "id" not in response:
            raise errors.status_error(502, "The upstream answered with something that is not a Response object.")
        return response, _adopt(response, call)

    def stream_translator(self, call: Call) -> NativeStream:
        return NativeStream(call)

    def parse_error(self, status: int, body: bytes, headers: Mapping[str, str]) -> errors.APIStatusError:
        return openai_error(status, body, headers)

    # -- operations on the upstream's own stored state ----------------------------------------

    def retrieve_request(self, dep: Deployment, upstream_id: str) -> HttpRequest:
        return HttpRequest("GET", dep.url(f"/responses/{upstream_id}"), dep.auth_headers(), auth=dep.credentials)

    def cancel_request(self, dep: Deployment, upstream_id: str) -> HttpRequest:
        return HttpRequest(
            "POST", dep.url(f"/responses/{upstream_id}/cancel"), dep.auth_headers(), auth=dep.credentials
        )

    def delete_request(self, dep: Deployment, upstream_id: str) -> HttpRequest:
        return HttpRequest("DELETE", dep.url(f"/responses/{upstream_id}"), dep.auth_headers(), auth=dep.credentials)


def _adopt(response: Json, call: Call) -> str | None:
    """Give an upstream Response our id (and the client's previous id); return the upstream id."""
    upstream_id = response.get("id")
    response["id"] = call.id
    response["previous_response_id"] = call.params.get("previous_response_id")
    if call.conversation_id:
        response["conversation"] = {"id": call.conversation_id}
    return upstream_id


def _with_query(url: str, query: Mapping[str, str]) -> str:
    if not query:
        return url
    return url + ("&" if "?" in url else "?") + urlencode(query)


_READ = frozenset(n.encode() for n in (*LIFECYCLE, "error"))  # the frames a Run never carries
_READ_NAMES = frozenset(b"event: " + n for n in _READ)  # as their event lines


def _text_delta(name: bytes) -> bool:
    """A plain frame's event name (or line) that counts as a token: a `*.delta`, audio's not."""
    return name.endswith(b".delta") and b"audio" not in name


def _deltas(heads: bytes) -> int:
    """The text deltas among plain frames' event lines (each ending in a newline)."""
    if b"audio" not in heads:
        return heads.count(b".delta\n")
    return sum(map(_text_delta, heads.split(b"\n")))


class NativeStream:
    """Byte-level passthrough of a native stream, rewriting only lifecycle events."""

    __slots__ = ("_call", "_count", "_decoder", "_framed", "_last", "_pending", "response", "upstream_id")

    def __init__(self, call: Call) -> None:
        self._call = call
        self._count = 0
        self._last: Json | None = None
        self.response: Json | None = None
        self.upstream_id: str | None = None
        self._pending = b""  # the wire path's bytes after the last whole frame
        self._decoder = SSEDecoder()  # the wire path's frames that are read, not only forwarded
        self._framed = False  # the wire path gave up on runs (CRLF framing): frame by frame

    def feed_wire(self, chunk: bytes) -> Iterator[StreamEvent]:
        """The events of a chunk of the stream's bytes, for a consumer that writes SSE itself
        (`Call.sse_runs`): each run of plain frames ("event: x" and one "data:" line, x not read
        here) in one Run of the bytes it came in, every other frame through `feed`. A frame costs
        a few scans, where decoding, wrapping and encoding it again costs several times that.
        A generator, so the events before a frame that cannot be read still go out."""
        if self._framed or b"\r" in chunk:
            self._framed = True
            chunk, self._pending = self._pending + chunk, b""
            yield from self._decode(chunk)
            return
        data = self._pending + chunk if self._pending else chunk
        if len(data) <= 1024:  # a few frames: a look at each costs less than the scans below
            blocks = data.split(b"\n\n")
            self._pending = blocks.pop()  # after the last blank line: not a whole frame yet
            if blocks:
                yield from self._feed_blocks(blocks)
            return
        end = data.rfind(b"\n\n") + 2
        if end < 2:
            self._pending = data
            return
        self._pending = data[end:]
        whole = data[:end] if end < len(data) else data
        lines = whole.split(b"\n")
        frames = (len(lines) - 1) // 3
        names = lines[0:-1:3]
        heads = b"\n" + b"\n".join(names) + b"\n"
        # Plain throughout, tested a line kind at a time (each test one scan in C): every frame an
        # "event: x" line (x in ASCII, no space but the one after the colon) and one "data:" line.
        # Else frame by frame.
        if not (
            len(lines) == 3 * frames + 1
            and not any(lines[2::3])
            and all(map(bytes.startswith, names, repeat(b"event: ")))
            and heads.count(b" ") == frames
            and heads.isascii()
            and b"\t" not in heads  # nor any other byte bytes.strip() would take off a name
            and b"\x0b" not in heads
            and b"\x0c" not in heads
            and all(map(bytes.startswith, lines[1::3], repeat(b"data: ")))
        ):
            yield from self._feed_blocks(whole.split(b"\n\n")[:-1])
            return
        read = _READ_NAMES.intersection(names)
        if not read:
            yield self._run(whole, frames, _deltas(heads))
            return
        start = 0
        for i in sorted(i for i, name in enumerate(names) if name in read):
            if i > start:
                wire = b"\n".join(lines[3 * start : 3 * i]) + b"\n"
                yield self._run(wire, i - start, _deltas(b"\n".join(names[start:i]) + b"\n"))
            yield from self._read(Frame(names[i][7:].decode(), lines[3 * i + 1][6:]))
            start = i + 1
        if start < frames:
            yield self._run(b"\n".join(lines[3 * start :]), frames - start, _deltas(b"\n".join(names[start:]) + b"\n"))

    def _feed_blocks(self, blocks: list[bytes]) -> Iterator[StreamEvent]:
        """Frame by frame: plain ones gathered into runs, the rest read through `feed`."""
        run: list[bytes] = []
        deltas = 0
        for block in blocks:
            nl = block.find(b"\n")
            name = block[7:nl].strip()
            if (
                nl < 0
                or name in _READ
                or not block.startswith(b"event: ")
                or not block.startswith(b"data: ", nl + 1)
                or block.find(b"\n", nl + 1) >= 0
            ):
                if run:
                    yield self._run(b"\n\n".join(run) + b"\n\n", len(run), deltas)
                    run, deltas = [], 0
                yield from self._decode(block + b"\n\n")
            else:
                run.append(block)
                deltas += _text_delta(name)
        if run:
            yield self._run(b"\n\n".join(run) + b"\n\n", len(run), deltas)

    def _run(self, wire: bytes, frames: int, deltas: int) -> Run:
        self._count += frames
        return Run(wire, frames, deltas)  # a token a delta, as gateway/produced

    def finish_wire(self) -> list[StreamEvent]:
        """What the wire path still holds at the end of the bytes (a last frame without its
        blank line), read as `feed` reads frames."""
        pending, self._pending = self._pending, b""
        return self._decode(pending, end=True)

    def _decode(self, data: bytes, end: bool = False) -> list[StreamEvent]:
        frames = self._decoder.feed(data) + self._decoder.finish() if end else self._decoder.feed(data)
        out: list[StreamEvent] = []
        for frame in frames:
            out += self._read(frame)
        return out

    def _read(self, frame: Frame) -> list[StreamEvent]:
        return self.finish() if frame.data == b"[DONE]" else self.feed(frame)  # as upstream.translate

    def feed(self, frame: Frame) -> list[StreamEvent]:
        self._count += 1
        kind = frame.event
        if kind is None or kind in LIFECYCLE or kind == "error":
            data = orjson.loads(frame.data)
            kind = data.get("type") or kind or "message"
            if kind in LIFECYCLE and isinstance(data.get("response"), dict):
                self._last = data["response"]
                self.upstream_id = _adopt(self._last, self._call) or self.upstream_id
                if kind in TERMINAL:
                    self.response = self._last
            elif kind == "error":
                self.response = self._failed(str(data.get("message") or "The upstream stream failed."))
            return [StreamEvent(kind, data)]
        return [StreamEvent(kind, raw=frame.data)]

    def finish(self) -> list[StreamEvent]:
        if self.response is not None:
            return []
        return self.fail("The upstream closed the stream before the response finished.")

    def fail(self, message: str) -> list[StreamEvent]:
        out = []
        if self._last is None:  # nothing came yet: clients expect response.created first
            self._last = response_skeleton(self._call)
            created = {"type": "response.created", "sequence_number": self._count, "response": dict(self._last)}
            out.append(StreamEvent("response.created", created))
            self._count += 1
        self.response = self._failed(message)
        event = {"type": "response.failed", "sequence_number": self._count, "response": self.response}
        return [*out, StreamEvent("response.failed", event)]

    def _failed(self, message: str) -> Json:
        response = self._last or response_skeleton(self._call)
        response.update(status="failed", error={"code": "server_error", "message": message})
        return response
