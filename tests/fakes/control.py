"""What every fake upstream shares: recorded requests, the FIFO of reply scripts, the
``/_fake/*`` control routes, and ``serve``.

Each fake documents its own protocol-specific script keys (errors, delays, scripted text).
"""

from __future__ import annotations

import argparse
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

Json = dict[str, Any]


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
