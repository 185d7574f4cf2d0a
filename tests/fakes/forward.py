"""A fake that serves another provider's API under its own paths and auth (Vertex AI serves
Gemini and Claude, Azure serves OpenAI) by rewriting each request and handing it to the
original fake's app, in-process. The outer fake records the requests as clients sent them and
owns the reply scripts: a scripted request passes its script on to the inner fake.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.fakes.control import Control

Json = dict[str, Any]


@dataclass
class Rewrite:
    """Where a request goes in the inner fake, and what it looks like there."""

    app: ASGIApp
    control: Control  # the inner fake's, to hand the reply script to
    path: str
    headers: dict[str, str]
    body: bytes
    query: str = ""
    scripted: bool = False
    drop_headers: tuple[str, ...] = field(default=())


Router = Callable[[Request, Json], Awaitable["Rewrite | Response"]]


class Forwarder:
    """The ASGI app behind a rewriting fake's catch-all route."""

    def __init__(self, control: Control, route: Router) -> None:
        self.control, self.route = control, route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        record = await self.control.record(request)
        target = await self.route(request, record)
        if isinstance(target, Response):
            record["status"] = target.status_code  # the outer fake's own answers (auth, routing)
            await target(scope, receive, send)
            return
        if target.scripted and (script := self.control.next_script(record)):
            target.control.scripts.appendleft(script)
        headers = {k: v for k, v in request.headers.items() if k not in target.drop_headers}
        headers |= target.headers | {"content-length": str(len(target.body))}
        inner = {
            **scope,
            "path": target.path,
            "raw_path": target.path.encode(),
            "root_path": "",
            "query_string": target.query.encode(),
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        }
        delivered = False

        async def replay() -> Any:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": target.body, "more_body": False}
            return await receive()

        seen = len(target.control.requests)
        try:
            await target.app(inner, replay, send)
        finally:
            # The inner fake notes a client that went away on its own record: show it on ours.
            for forwarded in target.control.requests[seen : seen + 1]:
                record.update({k: v for k, v in forwarded.items() if k in ("disconnected", "closed_at")})
