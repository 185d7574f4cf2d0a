"""What every fake upstream shares: recorded requests, the FIFO of reply scripts, the
``/_fake/*`` control routes, the misbehaviours any reply script can ask for, and ``serve``.

Misbehaviours (keys of a reply script, honoured by every fake on its scripted route):

- ``{"hang": true}``: never answer, not even headers; the request record gets
  ``"disconnected": true`` once the client closes its connection
- ``{"hang_after_events": 2}``: stream 2 frames, then stall until the client goes away
  (non-streaming: send the headers, then stall)
- ``{"raw_body": "<html>oops"}``: a 200 whose body is this text, labelled JSON
- ``{"raw_frame_after_events": 2}``: stream 2 frames, then ``data: <not JSON>`` and close
- ``{"truncate": true}``: non-streaming: announce the full length, send half the body,
  cut the connection; streaming: end the stream cleanly without its terminal event(s)
  (``{"truncate_after_events": N}`` keeps N frames, default half)
- ``{"done": true}``: a ``data: [DONE]`` frame after the last one, as vLLM and gateways send
- ``{"abort": true}``: send the headers, then cut the connection before any body

Each fake documents its own protocol-specific script keys (errors, delays, scripted text).
"""

from __future__ import annotations

import argparse
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

Json = dict[str, Any]
GARBAGE_FRAME = b"data: <html><body>502 Bad Gateway</body></html>\n\n"
DONE_FRAME = b"data: [DONE]\n\n"


class DropConnection(Exception):
    """Raised mid-response so that uvicorn closes the socket without finishing the body."""


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


class TruncatedResponse(Response):
    """Announces the full Content-Length, sends `keep` bytes (half by default), then drops the connection."""

    def __init__(self, content: bytes, *, media_type: str = "application/json", keep: int | None = None) -> None:
        super().__init__(content, media_type=media_type)
        self.keep = len(self.body) // 2 if keep is None else keep

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body[: self.keep], "more_body": True})
        raise DropConnection("scripted truncation")


class StalledResponse(Response):
    """Sends its headers, then nothing until the client goes away."""

    def __init__(self, until_closed: Callable[[], Any], media_type: str = "application/json") -> None:
        super().__init__(b"", media_type=media_type)
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.until_closed = until_closed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await self.until_closed()
        raise DropConnection("client went away")


class Control:
    """Recorded requests, reply scripts, control routes and misbehaviours of one fake."""

    def __init__(self, name: str, base_path: str, on_reset: Callable[[], None] | None = None) -> None:
        self.name = name
        self.base_path = base_path
        self.on_reset = on_reset
        self.requests: list[Json] = []
        self.scripts: deque[Json] = deque()

    async def record(self, request: Request) -> Json:
        """Method, path, query, lower-cased headers and the JSON body (``raw_body`` when not JSON)."""
        raw = await request.body()
        query = request.query_params
        record: Json = {
            "method": request.method,
            "path": request.url.path,
            "query": {k: (v[0] if len(v) == 1 else v) for k in query for v in [query.getlist(k)]},
            "headers": dict(request.headers),
            "body": None,
            "time": time.time(),
        }
        if raw:
            try:
                record["body"] = orjson.loads(raw)
            except orjson.JSONDecodeError:
                record["raw_body"] = raw.decode(errors="replace")
        self.requests.append(record)
        return record

    def next_script(self, record: Json) -> Json:
        script: Json = self.scripts.popleft() if self.scripts else {}
        if script:
            record["script"] = script
        return script

    def reset(self) -> None:
        self.requests.clear()
        self.scripts.clear()
        if self.on_reset is not None:
            self.on_reset()

    # -- misbehaviours ---------------------------------------------------------------------------

    async def before(self, request: Request, record: Json, script: Json) -> Response | None:
        """The misbehaviours that replace the reply altogether; None when the script asks for none."""
        if script.get("hang"):
            await until_closed(request, record)
            return Response(b"")  # nobody is listening any more
        if "raw_body" in script:
            return Response(str(script["raw_body"]).encode(), media_type="application/json")
        if script.get("abort"):
            return TruncatedResponse(b"{}", keep=0)
        return None

    def after(self, request: Request, record: Json, script: Json, response: Response) -> Response:
        """The misbehaviours that bend a reply the fake has built."""
        if response.status_code >= 400:
            return response
        if isinstance(response, StreamingResponse):
            response.body_iterator = bent_stream(response.body_iterator, request, record, script)
            return response
        if script.get("hang_after_events") is not None:
            return StalledResponse(lambda: until_closed(request, record), response.media_type or "application/json")
        if script.get("truncate"):
            return TruncatedResponse(response.body, media_type=response.media_type or "application/json")
        return response

    # -- routes ----------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        async def health(request: Request) -> Response:
            return json_response({"status": "ok", "name": self.name, "base_path": self.base_path})

        async def requests(request: Request) -> Response:
            if request.method == "DELETE":
                self.requests.clear()
                return json_response({"cleared": True})
            return json_response(self.requests)

        async def enqueue(request: Request) -> Response:
            scripts = orjson.loads(await request.body())
            self.scripts.extend(scripts if isinstance(scripts, list) else [scripts])
            return json_response({"queued": len(self.scripts)})

        async def reset(request: Request) -> Response:
            self.reset()
            return json_response({"reset": True})

        return [
            Route("/_fake/health", health),
            Route("/_fake/requests", requests, methods=["GET", "DELETE"]),
            Route("/_fake/enqueue", enqueue, methods=["POST"]),
            Route("/_fake/reset", reset, methods=["POST"]),
        ]


async def until_closed(request: Request, record: Json) -> None:
    """Wait for the client to close its connection, and note it in the request's record."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    record["disconnected"] = True
    record["closed_at"] = time.time()


async def bent_stream(frames: AsyncIterator[Any], request: Request, record: Json, script: Json) -> AsyncIterator[Any]:
    """A fake's stream of SSE frames (one per item) with the script's misbehaviours applied."""
    hang_after = script.get("hang_after_events")
    garbage_after = script.get("raw_frame_after_events")
    truncate_after = script.get("truncate_after_events")
    if script.get("truncate") and truncate_after is None:
        truncate_after = -1  # half, once the length is known
    sent = 0
    pending = [frame async for frame in frames] if truncate_after == -1 else None
    if pending is not None:
        truncate_after = len(pending) // 2
    source = _replay(pending) if pending is not None else frames
    async for frame in source:
        if hang_after is not None and sent >= int(hang_after):
            await until_closed(request, record)
            raise DropConnection("client went away")
        if garbage_after is not None and sent >= int(garbage_after):
            yield GARBAGE_FRAME
            return
        if truncate_after is not None and sent >= int(truncate_after):
            return
        yield frame
        sent += 1
    if hang_after is not None:  # fewer frames than asked for: stall at the end instead
        await until_closed(request, record)
        raise DropConnection("client went away")
    if script.get("done"):
        yield DONE_FRAME


async def _replay(frames: list[Any]) -> AsyncIterator[Any]:
    for frame in frames:
        yield frame


class QuietDrops(logging.Filter):
    """Scripted connection drops are expected: keep their tracebacks out of the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DropConnection))


def serve(
    build: Callable[[argparse.Namespace], Starlette],
    description: str,
    argv: list[str] | None = None,
    options: dict[str, dict[str, Any]] | None = None,
    **uvicorn_options: Any,
) -> None:
    """Parse ``--host/--port`` plus ``options`` (flag name -> ``add_argument`` kwargs), build the app, run it."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    for name, kwargs in (options or {}).items():
        parser.add_argument("--" + name.replace("_", "-"), **kwargs)
    args = parser.parse_args(argv)
    logging.getLogger("uvicorn.error").addFilter(QuietDrops())
    uvicorn.run(build(args), host=args.host, port=args.port, log_level="warning", access_log=False, **uvicorn_options)
