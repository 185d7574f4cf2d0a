"""POST /v1/responses served in front of Starlette's stack: the one route every call takes.

Starlette wraps each request in an error middleware, an exception middleware and a router
scanning every route, and a streamed response in an anyio task group; for the create route
that is a fifth of a native call's CPU. Here the same handler (`Proxy.create_response`, its
guard included) runs straight from ASGI. Its stream goes out in runs: every event ready
without waiting on the upstream is written in one `send`, so an upstream chunk of 40 deltas
costs one socket write, not 40, and nothing waits that could have gone out.

Every other route, and every request once any middleware is installed (the access log), takes
Starlette's path. Every request, whichever path it takes, first gets its `x-request-id`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from .request_id import RequestId

log = logging.getLogger("llmrelay.proxy")
HOT_PATHS = frozenset({"/v1/responses", "/responses"})
WATCH_AFTER = 0.25  # seconds a call runs before a client leaving is watched for
Handler = Callable[[Request], Awaitable[Response]]


class HotApp(Starlette):
    """Starlette, with `hot` (the guarded create handler) answering POST /v1/responses itself."""

    hot: Handler | None = None

    def __init__(self, *args: Any, traces: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._front = RequestId(self._dispatch, traces=traces)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._front(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        hot = self.hot
        if (
            hot is not None
            and scope["type"] == "http"
            and scope["path"] in HOT_PATHS
            and scope["method"] == "POST"
            and not self.user_middleware  # any middleware (the access log) keeps every request in its stack
        ):
            scope["app"] = self  # what Starlette's own stack would set: request.app, app.state
            response = await hot(Request(scope, receive))
            if isinstance(response, StreamingResponse):
                await stream(response, receive, send)
            else:
                await response(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


async def stream(response: StreamingResponse, receive: Receive, send: Send) -> None:
    """Send a streamed response in runs; a client that leaves cancels the stream (which closes
    the upstream), as Starlette's disconnect listener does. It is watched for once the stream
    has run WATCH_AFTER seconds: a quick stream pays one timer, not a task."""
    task = asyncio.current_task()
    assert task is not None
    watcher: asyncio.Task[None] | None = None

    def watch() -> None:
        nonlocal watcher
        watcher = asyncio.ensure_future(_cancel_when_gone(receive, task))

    timer = asyncio.get_running_loop().call_later(WATCH_AFTER, watch)
    body: AsyncIterator[Any] = response.body_iterator  # type: ignore[assignment]
    writer = _Writer(send)
    try:
        await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
        tail = await _pump(body, writer)
        timer.cancel()
        if watcher is not None:
            watcher.cancel()
        await writer.drain()
        await send({"type": "http.response.body", "body": tail, "more_body": False})  # one write with the end
    except asyncio.CancelledError:
        if not (watcher is not None and watcher.done() and not watcher.cancelled()):
            raise  # cancelled for another reason: the server stopping
        task.uncancel()
        log.info("client left a stream before its end: upstream call cancelled")
    finally:
        timer.cancel()
        if watcher is not None:
            watcher.cancel()
        if writer.task is not None:
            writer.task.cancel()
        aclose = getattr(body, "aclose", None)
        if aclose is not None:
            await aclose()


async def _cancel_when_gone(receive: Receive, task: asyncio.Task[Any]) -> None:
    # The body was read already, so the next message can only be the disconnect.
    while (await receive())["type"] != "http.disconnect":
        pass
    task.cancel()


async def _pump(body: AsyncIterator[Any], writer: _Writer) -> bytes:
    """Pull chunks from `body`, writing each run of them that was ready without waiting; the
    run that was ready when `body` ended is returned, to go out with the end of the response."""
    it = body.__aiter__()
    run: list[bytes] = []
    while True:
        if writer.task is not None:
            await writer.drain()  # a slow reader: stop pulling the upstream until it catches up
        try:
            value, rest = at_once(it.__anext__())  # type: ignore[arg-type]
        except StopAsyncIteration:
            break
        if rest is None:  # there without waiting: part of this run
            run.append(value)
            continue
        # The next chunk waits on the upstream: what is ready goes out now, then wait.
        if run:
            writer.write(b"".join(run))
            run = []
        try:
            run.append(await rest)
        except StopAsyncIteration:
            break
    return b"".join(run)


def at_once(coro: Coroutine[Any, Any, Any]) -> tuple[Any, Rest | None]:
    """Step `coro` once: (its result, None) when it finished without waiting, else (None, the rest
    of it to await). What it raises at once is raised here."""
    try:
        pending = coro.send(None)
    except StopIteration as done:
        return done.value, None
    return None, Rest(coro, pending)


class Rest:
    """Awaiting this awaits the rest of a coroutine stepped once already (what `yield from`
    would do had it made that first step): results and exceptions pass through both ways."""

    __slots__ = ("coro", "pending")

    def __init__(self, coro: Coroutine[Any, Any, Any], pending: Any) -> None:
        self.coro = coro
        self.pending = pending

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, pending = self.coro, self.pending
        while True:
            try:
                sent = yield pending
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:
                try:
                    pending = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    pending = coro.send(sent)
                except StopIteration as done:
                    return done.value


class _Writer:
    """Body writes that complete at once when the socket takes them (uvicorn's `send` only
    waits when the client reads slowly); one that has to wait finishes in a task, and what
    comes meanwhile queues behind it."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.queue: list[bytes] = []
        self.task: asyncio.Task[None] | None = None

    def write(self, data: bytes) -> None:
        if self.task is not None:
            self.queue.append(data)
            return
        _, rest = at_once(self.send({"type": "http.response.body", "body": data, "more_body": True}))  # type: ignore[arg-type]
        if rest is not None:
            self.task = asyncio.ensure_future(self._finish(rest))

    async def _finish(self, rest: Rest) -> None:
        await rest
        while self.queue:
            data = b"".join(self.queue)
            self.queue.clear()
            await self.send({"type": "http.response.body", "body": data, "more_body": True})
        self.task = None

    async def drain(self) -> None:
        if self.task is not None:
            await self.task
