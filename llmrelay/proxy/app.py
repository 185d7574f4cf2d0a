"""The proxy: OpenAI's Responses HTTP API as a thin Starlette skin over a Relay.

It knows HTTP (auth, body limits, SSE framing, error shapes), not providers.
Every route is served with and without the `/v1` prefix.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import openai
import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, HTTPConnection, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import Message
from starlette.websockets import WebSocket

from .. import errors
from ..config import Config, load_config, parse_config
from ..gateway.access import is_admin, visible
from ..gateway.setup import build_gateway
from ..relay import Relay
from ..router import Router
from ..router.health import Health
from ..streaming.events import StreamEvent
from ..streaming.sse import encode
from ..telemetry import build_telemetry
from .access_log import MODEL, AccessLog
from .admin_responses import response_routes
from .admin_routes import admin_routes
from .auth import Auth, caller_of, refuse_call_options
from .hot_route import WATCH_AFTER, HotApp, at_once
from .openapi import document
from .request_id import REQUEST_ID, TRACE
from .ui_routes import ui_routes
from .websocket import responses_socket

log = logging.getLogger("llmrelay.proxy")
DROPPED_HEADER = "x-llmrelay-dropped-params"
COST_HEADER = "x-llmrelay-response-cost"
DEPLOYMENT_HEADER = "x-llmrelay-deployment"  # the id of the deployment that answered
CLOSE = {"connection": "close"}  # the rest of a body that was refused is not worth reading
_PASSED_HEADERS = ("retry-after", "retry-after-ms", "connection")
_PASSED_PREFIX = "x-ratelimit-"
LIMIT_MESSAGE = "'limit' must be an integer between 1 and 100."
Handler = Callable[[Request], Awaitable[Response]]
T = TypeVar("T")


class Proxy:
    """Per-app state: the relay, the master key and the limits."""

    def __init__(self, config: Config, relay: Relay | None = None, body_timeout: float = 60.0) -> None:
        self.config = config
        self.body_timeout = body_timeout
        self.relay = relay or Relay(
            store=config.store_url,
            router=Router(config.deployments(), config.wildcards(), config.routing()),
            num_retries=config.num_retries,
            timeout=config.timeout,
            stream_timeout=config.stream_timeout,
            drop_params=config.litellm_settings.drop_params,
            prompt_caching=config.litellm_settings.prompt_caching,
            mcp=config.mcp_policy(),
            media=config.media_policy(),
        )
        self.gateway = build_gateway(config, self.relay.store)
        self.relay.stages = self.gateway.stages
        self.telemetry = build_telemetry(config)  # None unless metrics, traces or request logs are on
        if self.telemetry is not None:
            self.telemetry.install(self.relay)
        self.auth = Auth(config.general_settings.master_key, self.gateway.directory)
        gs = config.general_settings
        self.health = Health(self.relay, gs.health_check_interval if gs.background_health_checks else None)
        self.max_body = int(config.general_settings.max_request_size_mb * 1024 * 1024)

    # -- request plumbing --------------------------------------------------------------------

    async def owner(self, request: HTTPConnection) -> str | None:
        return await self.auth.owner(request)

    async def master_only(self, request: Request) -> None:
        """The master key, or a key whose user is a `proxy_admin`."""
        if self.auth.open or (
            await self.owner(request) is not None and not ((caller := caller_of(request)) and is_admin(caller))
        ):
            raise errors.status_error(
                403, "Only the master key (or a proxy_admin's key) manages the proxy.", type="permission_error"
            )

    async def json_body(self, request: Request) -> dict[str, Any]:
        length = request.headers.get("content-length")
        if length and length.isascii() and length.isdigit() and int(length) > self.max_body:
            raise _too_large(self.max_body)
        chunks, size = [], 0
        receive, deadline = request.receive, None
        while True:
            pending: Awaitable[Message] | None = receive()
            if isinstance(pending, Coroutine):  # a body that is all in (most are) is read at once, without a timer
                message, pending = at_once(pending)
            if pending is not None:
                if deadline is None:
                    deadline = asyncio.get_running_loop().time() + self.body_timeout
                message = await self._body_within(pending, deadline)
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise _too_large(self.max_body)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        try:
            body = orjson.loads(b"".join(chunks))
        except orjson.JSONDecodeError:
            raise errors.bad_request(
                "We could not parse the JSON body of your request. Send a JSON object.", code="invalid_json"
            ) from None
        if not isinstance(body, dict):
            raise errors.bad_request("The request body must be a JSON object.", code="invalid_json")
        request.scope[MODEL] = body.get("model")  # for the access log
        return body

    async def _body_within(self, message: Awaitable[Message], deadline: float) -> Message:
        try:
            async with asyncio.timeout_at(deadline):
                return await message
        except TimeoutError:
            raise errors.status_error(
                408,
                f"The request body did not arrive within {self.body_timeout:g} seconds.",
                code="request_timeout",
                headers=CLOSE,
            ) from None

    # -- routes ------------------------------------------------------------------------------

    async def create_response(self, request: Request) -> Response:
        owner = await self.owner(request)
        body = await self.json_body(request)
        refuse_call_options(body)
        dropped: list[str] = []
        meta = _meta(request)
        if body.get("stream") is True:
            events = await self.relay.stream(body, owner=owner, dropped=dropped, meta=meta, sse=True)
            headers = {**_reply_headers(dropped, meta), "cache-control": "no-cache", "x-accel-buffering": "no"}
            return StreamingResponse(_sse(events), media_type="text/event-stream", headers=headers)
        work = self.relay.create(body, owner=owner, dropped=dropped, meta=meta)
        created = await _unless_client_leaves(request, work)
        if created is None:
            return Response(status_code=499)  # nobody reads it
        return Response(orjson.dumps(created), media_type="application/json", headers=_reply_headers(dropped, meta))

    async def compact(self, request: Request) -> Response:
        owner = await self.owner(request)
        body = await self.json_body(request)
        refuse_call_options(body)
        return _json(await self.relay.compact(body, owner=owner, meta=_meta(request)))

    async def count_input_tokens(self, request: Request) -> Response:
        owner = await self.owner(request)
        body = await self.json_body(request)
        refuse_call_options(body)
        return _json(await self.relay.count_input_tokens(body, owner=owner, meta=_meta(request)))

    async def retrieve_response(self, request: Request) -> Response:
        owner = await self.owner(request)
        response_id = request.path_params["response_id"]
        if request.query_params.get("stream") in ("true", "1"):
            after = request.query_params.get("starting_after")
            message = "'starting_after' must be an integer."
            events = await self.relay.retrieve_stream(
                response_id,
                starting_after=None if after is None else _integer(after, "starting_after", message),
                owner=owner,
            )
            return StreamingResponse(
                _sse(events), media_type="text/event-stream", headers={"cache-control": "no-cache"}
            )
        return _json(await self.relay.retrieve(response_id, owner=owner))

    async def delete_response(self, request: Request) -> Response:
        owner = await self.owner(request)
        return _json(await self.relay.delete(request.path_params["response_id"], owner=owner))

    async def cancel_response(self, request: Request) -> Response:
        owner = await self.owner(request)
        return _json(await self.relay.cancel(request.path_params["response_id"], owner=owner))

    async def input_items(self, request: Request) -> Response:
        owner = await self.owner(request)
        q = request.query_params
        limit = _integer(q.get("limit", "20"), "limit", LIMIT_MESSAGE)
        page = await self.relay.input_items(
            request.path_params["response_id"],
            after=q.get("after"),
            before=q.get("before"),
            limit=limit,
            order=q.get("order", "desc"),
            owner=owner,
        )
        return _json(page)

    # -- conversations -----------------------------------------------------------------------

    async def create_conversation(self, request: Request) -> Response:
        owner = await self.owner(request)
        body = await self.json_body(request) if await _has_body(request) else {}
        return _json(await self.relay.conversations.create(items_=body.get("items"), metadata=body.get("metadata"),
                                                           owner=owner))  # fmt: skip

    async def conversation(self, request: Request) -> Response:
        owner = await self.owner(request)
        cid = request.path_params["conversation_id"]
        convs = self.relay.conversations
        if request.method == "GET":
            return _json((await convs.get(cid, owner=owner)).public())
        if request.method == "DELETE":
            return _json(await convs.delete(cid, owner=owner))
        body = await self.json_body(request)
        return _json(await convs.update(cid, metadata=body.get("metadata"), owner=owner))

    async def conversation_items(self, request: Request) -> Response:
        owner = await self.owner(request)
        cid = request.path_params["conversation_id"]
        if request.method == "POST":
            body = await self.json_body(request)
            return _json(await self.relay.conversations.add_items(cid, body.get("items"), owner=owner))
        q = request.query_params
        limit = _integer(q.get("limit", "20"), "limit", LIMIT_MESSAGE)
        page = await self.relay.conversations.list_items(
            cid, after=q.get("after"), limit=limit, order=q.get("order", "desc"), owner=owner
        )
        return _json(page)

    async def conversation_item(self, request: Request) -> Response:
        owner = await self.owner(request)
        cid, item_id = request.path_params["conversation_id"], request.path_params["item_id"]
        if request.method == "DELETE":
            return _json(await self.relay.conversations.delete_item(cid, item_id, owner=owner))
        return _json(await self.relay.conversations.get_item(cid, item_id, owner=owner))

    async def socket(self, ws: WebSocket) -> None:
        await responses_socket(ws, self.relay, self.auth)

    async def models(self, request: Request) -> Response:
        await self.owner(request)
        names = visible(caller_of(request), self.relay.router.names() if self.relay.router else [])
        data = [{"id": n, "object": "model", "created": 0, "owned_by": "llmrelay"} for n in names]
        return _json({"object": "list", "data": data})

    async def health_check(self, request: Request) -> Response:
        """LiteLLM's `GET /health`: each deployment asked for a minimal reply."""
        await self.owner(request)
        return _json(await self.health.report())

    async def liveliness(self, request: Request) -> Response:
        return _json({"status": "healthy"})

    async def openapi(self, request: Request) -> Response:
        """The OpenAPI document, served without a key: it describes the API, not its data."""
        return Response(await asyncio.to_thread(document), media_type="application/json")

    async def readiness(self, request: Request) -> Response:
        store = self.relay.store
        # The channel other instances' cancels arrive on, once this instance has subscribed.
        channel = {} if (up := store.listening()) is None else {"channel": "listening" if up else "reconnecting"}
        try:
            await store.ping()
        except Exception as exc:
            log.warning("readiness: store unavailable: %s", exc)
            return _json({"status": "unhealthy", "store": "unavailable", **channel}, status=503)
        # deployments skipped after failures, with the seconds left (shared ones included)
        router = self.relay.router
        cooling = {"cooldowns": left} if router is not None and (left := router.cooldowns.remaining()) else {}
        return _json({"status": "healthy", "store": "connected", **channel, **cooling})

    async def metrics(self, request: Request) -> Response:
        """Prometheus' scrape (LiteLLM's path, open like LiteLLM's): every worker's values."""
        assert self.telemetry is not None and self.telemetry.metrics is not None
        body, content_type = self.telemetry.metrics.scrape()
        return Response(body, media_type=content_type)

    def routes(self) -> list[Route]:
        table: list[tuple[str, Handler, str]] = [
            ("/responses", self.create_response, "POST"),
            ("/responses/input_tokens", self.count_input_tokens, "POST"),
            ("/responses/compact", self.compact, "POST"),
            ("/responses/{response_id}", self.retrieve_response, "GET"),
            ("/responses/{response_id}", self.delete_response, "DELETE"),
            ("/responses/{response_id}/cancel", self.cancel_response, "POST"),
            ("/responses/{response_id}/input_items", self.input_items, "GET"),
            ("/models", self.models, "GET"),
            ("/conversations", self.create_conversation, "POST"),
            ("/conversations/{conversation_id}", self.conversation, "GET,POST,DELETE"),
            ("/conversations/{conversation_id}/items", self.conversation_items, "GET,POST"),
            ("/conversations/{conversation_id}/items/{item_id}", self.conversation_item, "GET,DELETE"),
            ("/openapi.json", self.openapi, "GET"),
        ]
        routes = [
            Route(prefix + path, _guard(fn), methods=m.split(",")) for path, fn, m in table for prefix in ("/v1", "")
        ]
        routes += [WebSocketRoute(prefix + "/responses", self.socket) for prefix in ("/v1", "")]
        more = (*admin_routes(self), *response_routes(self), *ui_routes())
        routes += [Route(path, _guard(fn), methods=[m]) for path, fn, m in more]
        routes += [
            Route("/health", _guard(self.health_check), methods=["GET"]),
            Route("/health/liveliness", _guard(self.liveliness), methods=["GET"]),
            Route("/health/readiness", _guard(self.readiness), methods=["GET"]),
        ]
        if self.telemetry is not None and self.telemetry.metrics is not None:
            routes.append(Route("/metrics", _guard(self.metrics), methods=["GET"]))
        return routes


def create_app(
    config: Config, relay: Relay | None = None, *, body_timeout: float = 60.0, access_log: bool = False
) -> Starlette:
    proxy = Proxy(config, relay, body_timeout)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await proxy.relay.store.ping()  # opens the store and creates or migrates its schema
        if proxy.relay.router is not None:
            await proxy.relay.router.start()  # cooldowns shared with other instances, when configured
        proxy.health.start()
        # Everything alive now lives as long as the process: keep it out of every GC pass.
        gc.collect()
        gc.freeze()
        yield
        await proxy.health.close()
        await proxy.relay.aclose()

    async def not_found(request: Request, exc: Exception) -> Response:
        path = request.url.path
        hint = f" (without the trailing slash: {path.rstrip('/')})" if path.endswith("/") and path != "/" else ""
        return _error(errors.not_found(f"Unknown route: {request.method} {path}{hint}"))

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return _error(errors.status_error(405, f"Method {request.method} is not allowed on {request.url.path}"))

    logged = access_log or config.general_settings.access_log
    traces = proxy.telemetry is not None and proxy.telemetry.tracing is not None
    app = HotApp(
        traces=traces,
        routes=proxy.routes(),
        lifespan=lifespan,
        exception_handlers={404: not_found, 405: not_allowed},
        middleware=[Middleware(AccessLog)] if logged else [],  # not even a pass-through when off
    )
    # `POST /v1/responses/` is a 404 naming the path to use, not a 307 most clients do not follow.
    app.router.redirect_slashes = False
    app.hot = _guard(proxy.create_response)  # taken only while no middleware is installed
    app.state.proxy = proxy
    return app


def app_from_env() -> Starlette:
    """The app factory uvicorn workers call: the CLI passes its choices through the environment."""
    options = {
        "body_timeout": float(os.environ.get("LLMRELAY_BODY_TIMEOUT", "60")),
        "access_log": os.environ.get("LLMRELAY_ACCESS_LOG") == "1",
    }
    if path := os.environ.get("LLMRELAY_CONFIG"):
        return create_app(load_config(path), **options)
    model = os.environ.get("LLMRELAY_MODEL", "mock/demo")
    name = os.environ.get("LLMRELAY_MODEL_NAME", model)
    config = parse_config({"model_list": [{"model_name": name, "litellm_params": {"model": model}}]})
    return create_app(config, **options)


# -- helpers -----------------------------------------------------------------------------------


def _meta(request: Request) -> dict[str, Any]:
    """What the stages read about a call's caller: its key, its request id, its trace headers."""
    scope = request.scope
    return {"caller": caller_of(request), "request_id": scope.get(REQUEST_ID), "trace": scope.get(TRACE)}


def _reply_headers(dropped: list[str], meta: dict[str, Any]) -> dict[str, str]:
    """What a create's reply tells of the call: the params dropped, its cost (known once it ended;
    a background job is charged when it ends), the deployment that answered."""
    headers = {}
    if dropped:
        headers[DROPPED_HEADER] = ", ".join(dropped)
    if (cost := meta.get("cost")) is not None:
        headers[COST_HEADER] = repr(cost)
    if deployment := meta.get("deployment"):
        headers[DEPLOYMENT_HEADER] = deployment
    return headers


def _guard(handler: Handler) -> Handler:
    """Every failure leaves as OpenAI's error shape; nothing leaks a traceback."""

    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except openai.APIStatusError as exc:
            return _error(exc)
        except openai.APIConnectionError as exc:  # a timeout too
            return _error(errors.upstream_failure_status(exc))
        except ClientDisconnect:  # nobody is left to answer: one line, no traceback
            log.warning("client went away before sending the whole body of %s %s", request.method, request.url.path)
            return Response(status_code=400)
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            return _error(errors.status_error(500, "Internal server error.", type="server_error"))

    return guarded


async def _unless_client_leaves(request: Request, work: Awaitable[T]) -> T | None:
    """Run `work` while the client waits; if it disconnects first, cancel `work`, which closes
    the upstream connection, so the upstream stops generating what nobody will read. The
    watch starts only once a call has run WATCH_AFTER seconds: quick calls pay one timer."""
    task = asyncio.current_task()
    assert task is not None
    watcher: asyncio.Task[None] | None = None

    def watch() -> None:
        nonlocal watcher
        watcher = asyncio.ensure_future(_cancel_when_gone(request, task))

    timer = asyncio.get_running_loop().call_later(WATCH_AFTER, watch)
    try:
        return await work
    except asyncio.CancelledError:
        gone = watcher is not None and watcher.done() and not watcher.cancelled() and watcher.exception() is None
        if not gone:
            raise  # cancelled for another reason: the server stopping
        task.uncancel()
        log.info("client left %s %s before its reply: upstream call cancelled", request.method, request.url.path)
        return None
    finally:
        timer.cancel()
        if watcher is not None and not watcher.done():
            watcher.cancel()


async def _cancel_when_gone(request: Request, task: asyncio.Task[Any]) -> None:
    # The body was read already, so the next message can only be the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass
    task.cancel()


async def _has_body(request: Request) -> bool:
    return request.headers.get("content-length") not in (None, "0") or "chunked" in request.headers.get(
        "transfer-encoding", ""
    )


async def _sse(events: AsyncIterator[StreamEvent]) -> AsyncIterator[bytes]:
    sent = 0
    try:
        async for event in events:
            yield event.sse()
            sent += event.events
    except Exception as exc:  # headers are gone: the failure can only travel as an event
        code = "server_error"
        if isinstance(exc, openai.APIStatusError) and exc.status_code == 503:  # an outage (the store's), not a bug
            log.warning("stream failed after %d events: %s", sent, exc.message)
            code = "service_unavailable"
        else:
            log.exception("stream failed after %d events", sent)
        message = exc.message if isinstance(exc, openai.APIError) else "Internal server error."
        error = {"type": "error", "code": code, "message": message, "param": None, "sequence_number": sent}
        yield encode("error", orjson.dumps(error))


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _error(exc: openai.APIStatusError) -> Response:
    headers = {
        k: v
        for k, v in exc.response.headers.items()
        if k.lower() in _PASSED_HEADERS or k.lower().startswith(_PASSED_PREFIX)
    }
    return Response(orjson.dumps(errors.error_body(exc)), exc.status_code, headers, "application/json")


def _integer(text: str, param: str, message: str) -> int:
    """A query parameter as an int; str.isdigit alone lets through digits int() refuses ("²")."""
    try:
        if text.isascii():
            return int(text)
    except ValueError:
        pass
    raise errors.bad_request(message, param=param, code="invalid_value")


def _too_large(limit: int) -> errors.APIStatusError:
    message = f"Request body too large: the limit is {limit} bytes."
    return errors.status_error(413, message, code="request_too_large", headers=CLOSE)
