"""A Responses upstream whose streams last: one text delta every `--interval` seconds for
`--seconds`, as a real model's answer does (nginx cannot pace a body).

Every delta's text is `t=<CLOCK_MONOTONIC ns> `, stamped as it is written; the client reads the
stamp back through the gateway, so the gateway's added latency is measured per delta without
any clock but the machine's own. Minimal HTTP/1.1 on raw asyncio protocols (uvloop when
installed): keep-alive, Content-Length request bodies, chunked replies. All streams are paced
by one timer wheel (one callback per millisecond slot, not one timer per stream), so thousands
of streams cost the upstream little CPU.

    python bench/slow_upstream.py --port 0 --interval 0.1 --seconds 20   # prints "PORT <n>"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from typing import Any

from canned import MSG_ID, responses_body

SLOTS = 100  # pacing slots per interval
HEAD_END = b"\r\n\r\n"
STREAMED = re.compile(rb'"stream"\s*:\s*true')


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _event(obj: dict[str, Any]) -> bytes:
    return _chunk(b"event: %s\ndata: %s\n\n" % (obj["type"].encode(), json.dumps(obj, separators=(",", ":")).encode()))


def stream_parts(deltas: int) -> tuple[bytes, bytes, bytes]:
    """The reply head (status line to the first events), one delta's template, the tail."""
    where = {"item_id": MSG_ID, "output_index": 0, "content_index": 0}
    part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
    message = {"id": MSG_ID, "type": "message", "status": "in_progress", "content": [], "role": "assistant"}
    head = [
        {"type": "response.created", "sequence_number": 0, "response": responses_body("in_progress")},
        {"type": "response.in_progress", "sequence_number": 1, "response": responses_body("in_progress")},
        {"type": "response.output_item.added", "sequence_number": 2, "output_index": 0, "item": message},
        {"type": "response.content_part.added", "sequence_number": 3, **where, "part": part},
    ]
    delta = {"type": "response.output_text.delta", "sequence_number": 0, **where, "delta": "@", "logprobs": []}
    text = "x" * deltas
    done_part = {**part, "text": text}
    done_message = {**message, "status": "completed", "content": [done_part]}
    completed = responses_body()
    completed["output"] = [done_message]
    n = 4 + deltas
    tail = [
        {"type": "response.output_text.done", "sequence_number": n, **where, "text": text, "logprobs": []},
        {"type": "response.content_part.done", "sequence_number": n + 1, **where, "part": done_part},
        {"type": "response.output_item.done", "sequence_number": n + 2, "output_index": 0, "item": done_message},
        {"type": "response.completed", "sequence_number": n + 3, "response": completed},
    ]
    status = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    return (
        status + b"".join(_event(e) for e in head),
        _event(delta),
        b"".join(_event(e) for e in tail) + b"0\r\n\r\n",
    )


class Upstream:
    def __init__(self, interval: float, deltas: int) -> None:
        self.interval = interval
        self.deltas = deltas
        self.head, template, self.tail = stream_parts(deltas)
        # The template's chunk size changes with the stamp's length: split around the "@".
        body = template.split(b"\r\n", 1)[1].rsplit(b"\r\n", 1)[0]
        self.before, self.after = body.split(b'"delta":"@"')
        whole = json.dumps(responses_body(), separators=(",", ":")).encode()
        self.whole = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
            len(whole),
            whole,
        )
        self.slots: list[dict[asyncio.Transport, int]] = [{} for _ in range(SLOTS)]
        self.next_slot = 0
        self.streams = 0

    def delta(self) -> bytes:
        body = b'%s"delta":"t=%d "%s' % (self.before, time.monotonic_ns(), self.after)
        return _chunk(body)

    def start(self, transport: asyncio.Transport) -> None:
        transport.write(self.head)
        slot = self.next_slot
        self.next_slot = (slot + 1) % SLOTS
        self.slots[slot][transport] = 0
        self.streams += 1

    def stop(self, transport: asyncio.Transport) -> None:
        for slot in self.slots:
            slot.pop(transport, None)

    async def pace(self) -> None:
        loop = asyncio.get_running_loop()
        step = self.interval / SLOTS
        t = loop.time()
        i = 0
        while True:
            t += step
            await asyncio.sleep(max(0.0, t - loop.time()))
            slot = self.slots[i]
            i = (i + 1) % SLOTS
            done = []
            for transport, sent in slot.items():
                if transport.is_closing():
                    done.append(transport)
                    continue
                if sent < self.deltas:
                    transport.write(self.delta())
                    slot[transport] = sent + 1
                else:
                    transport.write(self.tail)
                    done.append(transport)
            for transport in done:
                slot.pop(transport, None)


class Conn(asyncio.Protocol):
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (end := self.buf.find(HEAD_END)) >= 0:
            head = self.buf[:end].lower()
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            assert self.transport is not None
            if STREAMED.search(body):
                self.upstream.start(self.transport)
            else:  # a plain create (the gateways' readiness probes): answered at once
                self.transport.write(self.upstream.whole)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.upstream.stop(self.transport)


async def serve(port: int, interval: float, seconds: float) -> None:
    upstream = Upstream(interval, max(1, round(seconds / interval)))
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Conn(upstream), "127.0.0.1", port, backlog=8192)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    await upstream.pace()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--interval", type=float, default=0.1)
    p.add_argument("--seconds", type=float, default=20.0)
    args = p.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args.port, args.interval, args.seconds))


if __name__ == "__main__":
    main()
