"""Fake OpenAI Responses API upstream: a real HTTP server speaking api.openai.com's wire format.

Run with ``python -m tests.fakes.openai_upstream --port N [--background-delay S]``.

The "model" is deterministic: it answers ``Echo (turns=N): <last user text>`` where N counts
the user messages in the whole context (``previous_response_id`` chain + this input), calls
the first function tool (``{"q": <last user text>}``) or the computer tool when tools are
offered, and says ``Echo (turns=N): tool said <output>`` once a tool result comes back.

A reply script posted to ``/_fake/enqueue`` (a dict, or a list of dicts) is consumed, FIFO,
by the next ``POST /v1/responses``:

- ``{"status": 429, "headers": {...}, "body": {...} | "text"}``: answer with that error
  (an OpenAI-shaped default body when ``body`` is omitted); a ``body`` with no error status
  is sent as is, with status 200 by default
- ``{"headers": {...}}``: extra headers on a normal reply
- ``{"delay": 0.2}``: wait before answering
- ``{"delta_delay": 0.3}``: sleep before each streamed ``*.delta`` event
- ``{"fail_after_events": 3}``: stream 3 events, then an ``error`` event, then close
  (non-streaming: a 500 ``server_error``)
- ``{"drop_after_events": 3}``: stream 3 events, then cut the connection
  (non-streaming: half the body, then cut)
- ``{"text": "..."}``: the assistant text to produce instead of the echo
- ``{"background_delay": 5}``: this background response completes after 5 s
  (instead of ``--background-delay``)
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.fakes import openai_model as model
from tests.fakes.control import Control, DropConnection, TruncatedResponse, json_response, serve
from tests.fakes.openai_model import ApiError

Json = dict[str, Any]
Handler = Callable[[Request, Json, Json], Awaitable[Response]]

BASE_PATH = "/v1"
BAD_KEY = "bad-key"
TERMINAL = {"completed", "incomplete", "failed", "cancelled"}
SERVER_ERROR = "The server had an error while processing your request. Sorry about that!"
MISSING_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header"
    " using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with"
    " blank username) if you're accessing the API from your browser and are prompted for a"
    " username and password. You can obtain an API key from"
    " https://platform.openai.com/account/api-keys."
)
DEFAULT_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to access this resource.", "invalid_request_error", None),
    404: ("The model does not exist or you do not have access to it.", "invalid_request_error", "model_not_found"),
    409: ("Conflict.", "invalid_request_error", None),
    429: ("Rate limit reached for requests. Please try again later.", "requests", "rate_limit_exceeded"),
    500: (SERVER_ERROR, "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}


def error_response(error: ApiError) -> Response:
    return json_response({"error": error.payload()}, error.status)


@dataclass
class Stored:
    """A response kept because of ``store`` or ``background``; ``status`` may lag ``final``."""

    final: Json
    items: list[Json]
    background: bool
    status: str
    error: Json | None = None
    task: asyncio.Task[None] | None = None

    def view(self) -> Json:
        if self.status == self.final["status"]:
            return self.final
        return model.snapshot(self.final, self.status, self.error)


class State:
    def __init__(self, background_delay: float) -> None:
        self.background_delay = background_delay
        self.responses: dict[str, Stored] = {}
        self.control = Control("openai", BASE_PATH, on_reset=self.forget)

    def forget(self) -> None:
        for stored in self.responses.values():
            if stored.task is not None:
                stored.task.cancel()
        self.responses.clear()

    def lookup(self, response_id: str) -> Stored:
        stored = self.responses.get(response_id)
        if stored is None:
            raise ApiError(404, f"No response found with id '{response_id}'.")
        return stored


def sse_frame(event: Json) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def numbered(event: Json, sequence_number: int) -> Json:
    # OpenAI puts type and sequence_number first; keep that order on the wire.
    return {"type": event["type"], "sequence_number": sequence_number, **event}


def build_app(background_delay: float = 0.5) -> Starlette:
    state = State(background_delay)

    control = state.control

    def check_auth(request: Request) -> None:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise ApiError(401, MISSING_KEY)
        if key == BAD_KEY:
            shown = key if len(key) <= 8 else key[:3] + "*" * (len(key) - 7) + key[-4:]
            raise ApiError(
                401,
                f"Incorrect API key provided: {shown}. You can find your API key at https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )

    def scripted_reply(script: Json) -> Response:
        status = int(script.get("status", 200))
        body = script.get("body")
        if isinstance(body, str):
            return Response(body, status_code=status, media_type="text/plain")
        if body is None:
            message, kind, code = DEFAULT_ERRORS.get(
                status, ("Scripted error.", "server_error" if status >= 500 else "invalid_request_error", None)
            )
            body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        return json_response(body, status)

    def api(handler: Handler, *, scripted: bool = False, auth: bool = True) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            record = await control.record(request)
            request_id = "req_" + secrets.token_hex(16)
            record["request_id"] = request_id
            script = control.next_script(record) if scripted else {}
            if script.get("delay"):
                await asyncio.sleep(float(script["delay"]))
            if (bent := await control.before(request, record, script)) is not None:
                return bent
            try:
                if "body" in script or int(script.get("status", 200)) >= 400:
                    response = scripted_reply(script)
                else:
                    if auth:
                        check_auth(request)
                    response = control.after(request, record, script, await handler(request, record, script))
            except ApiError as error:
                response = error_response(error)
            response.headers.update(
                {"x-request-id": request_id, "openai-version": "2020-10-01", "openai-processing-ms": "1"}
            )
            response.headers.update({str(k).lower(): str(v) for k, v in (script.get("headers") or {}).items()})
            return response

        return endpoint

    async def run_background(stored: Stored, delay: float) -> None:
        # queued for the first half of the delay, in_progress for the second
        await asyncio.sleep(delay / 2)
        if stored.status == "queued":
            stored.status = "in_progress"
        await asyncio.sleep(delay / 2)
        if stored.status == "in_progress":
            stored.status = stored.final["status"]

    async def stream(stored: Stored, events: Iterator[Json], script: Json, record: Json) -> AsyncIterator[bytes]:
        delta_delay = float(script.get("delta_delay") or 0)
        fail_after = script.get("fail_after_events")
        drop_after = script.get("drop_after_events")
        finished = False
        try:
            for seq, event in enumerate(events):
                if fail_after is not None and seq >= int(fail_after):
                    stored.status = "failed"
                    stored.error = {"code": "server_error", "message": SERVER_ERROR}
                    finished = True
                    error = {"type": "error", "code": "server_error", "message": SERVER_ERROR, "param": None}
                    yield sse_frame(numbered(error, seq))
                    return
                if drop_after is not None and seq >= int(drop_after):
                    finished = True
                    raise DropConnection("scripted drop_after_events")
                if delta_delay and event["type"].endswith(".delta"):
                    await asyncio.sleep(delta_delay)
                if event["type"] == "response.in_progress":
                    stored.status = "in_progress"
                yield sse_frame(numbered(event, seq))
            stored.status = stored.final["status"]
            finished = True
        finally:
            if not finished:
                # The client went away; generation "finishes" server-side regardless.
                record["disconnected"] = True
                stored.status = stored.final["status"]

    async def create_response(request: Request, record: Json, script: Json) -> Response:
        if record["body"] is None:  # malformed, empty or a bare null
            raise ApiError(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your"
                " HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid"
                " JSON. If you have trouble figuring out how to fix this, please contact us through our help"
                " center at help.openai.com.)",
            )
        body = record["body"]
        if not isinstance(body, dict):
            raise ApiError(400, "Invalid body: expected an object.")
        chain: list[Json] = []
        previous_id = body.get("previous_response_id")
        if previous_id is not None:
            previous = state.responses.get(previous_id)
            if previous is None:
                raise ApiError(
                    400,
                    f"Previous response with id '{previous_id}' not found.",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
            chain = previous.items + previous.final["output"]
        final, items = model.respond(body, chain, script.get("text"))
        background = body.get("background") is True
        streaming = body.get("stream") is True
        stored = Stored(final=final, items=items, background=background, status=final["status"])
        if body.get("store", True) is not False or background:
            state.responses[final["id"]] = stored
        if streaming:
            stored.status = "queued" if background else "in_progress"
            obfuscate = (body.get("stream_options") or {}).get("include_obfuscation", True) is not False
            events = model.stream_events(final, queued=background, obfuscate=obfuscate)
            return StreamingResponse(stream(stored, events, script, record), media_type="text/event-stream")
        if background:
            stored.status = "queued"
            delay = float(script.get("background_delay", state.background_delay))
            stored.task = asyncio.get_running_loop().create_task(run_background(stored, delay))
            return json_response(stored.view())
        if script.get("fail_after_events") is not None:
            raise ApiError(500, SERVER_ERROR, type="server_error")
        if script.get("drop_after_events") is not None:
            return TruncatedResponse(orjson.dumps(final), media_type="application/json")
        return json_response(final)

    async def retrieve_response(request: Request, record: Json, script: Json) -> Response:
        stored = state.lookup(request.path_params["response_id"])
        if request.query_params.get("stream") != "true":
            return json_response(stored.view())
        # Replay of the event stream (resuming a streamed background response).
        while stored.status not in TERMINAL:
            await asyncio.sleep(0.02)
        if stored.status not in ("completed", "incomplete"):
            return json_response(stored.view())
        after = int(request.query_params.get("starting_after", -1))
        obfuscate = request.query_params.get("include_obfuscation") != "false"
        replayed = model.stream_events(stored.final, queued=stored.background, obfuscate=obfuscate)
        events = [numbered(event, n) for n, event in enumerate(replayed)]

        async def replay() -> AsyncIterator[bytes]:
            for event in events[after + 1 :]:
                yield sse_frame(event)

        return StreamingResponse(replay(), media_type="text/event-stream")

    async def delete_response(request: Request, record: Json, script: Json) -> Response:
        response_id = request.path_params["response_id"]
        stored = state.lookup(response_id)
        if stored.task is not None:
            stored.task.cancel()
        del state.responses[response_id]
        return json_response({"id": response_id, "object": "response.deleted", "deleted": True})

    async def cancel_response(request: Request, record: Json, script: Json) -> Response:
        stored = state.lookup(request.path_params["response_id"])
        if not stored.background:
            raise ApiError(400, "Only responses created with background=true can be cancelled")
        if stored.status not in TERMINAL:
            stored.status = "cancelled"
            if stored.task is not None:
                stored.task.cancel()
        return json_response(stored.view())

    async def list_input_items(request: Request, record: Json, script: Json) -> Response:
        stored = state.lookup(request.path_params["response_id"])
        query = request.query_params
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise ApiError(
                400,
                f"Invalid value: '{order}'. Supported values are: 'asc' and 'desc'.",
                param="order",
                code="invalid_value",
            )
        try:
            limit = int(query.get("limit", 20))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            raise ApiError(
                400, "Invalid 'limit': expected an integer between 1 and 100.", param="limit", code="invalid_value"
            )
        items = stored.items if order == "asc" else stored.items[::-1]
        ids = [item["id"] for item in items]
        if query.get("after") in ids:
            items = items[ids.index(query["after"]) + 1 :]
        if query.get("before") in ids:
            items = items[: ids.index(query["before"])][-limit:]
        page = items[:limit]
        return json_response(
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": len(items) > limit,
            }
        )

    async def count_input_tokens(request: Request, record: Json, script: Json) -> Response:
        body = record["body"] or {}
        chain: list[Json] = []
        if (previous := state.responses.get(body.get("previous_response_id") or "")) is not None:
            chain = previous.items + previous.final["output"]
        items = chain + model.normalize_items(body.get("input") or [])
        tokens = len(str(body.get("instructions") or "").split()) + model.count_tokens(items)
        return json_response({"object": "response.input_tokens", "input_tokens": tokens})

    async def compact(request: Request, record: Json, script: Json) -> Response:
        # OpenAI's shape: every user message, then one opaque compaction item.
        body = record["body"] or {}
        chain: list[Json] = []
        if (previous := state.responses.get(body.get("previous_response_id") or "")) is not None:
            chain = previous.items + previous.final["output"]
        items = chain + model.normalize_items(body.get("input") or [])
        users = [i for i in items if i.get("type") == "message" and i.get("role") == "user"]
        opaque = "gAAAAA" + secrets.token_hex(24)  # only the upstream can read it
        output = [*users, {"id": "cmp_" + secrets.token_hex(24), "type": "compaction", "encrypted_content": opaque}]
        tokens = model.count_tokens(items)
        usage = {"input_tokens": tokens, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                 "output_tokens": 8, "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": tokens + 8}  # fmt: skip
        payload = {"id": "resp_" + secrets.token_hex(24), "object": "response.compaction",
                   "created_at": int(time.time()), "output": output, "usage": usage}  # fmt: skip
        return json_response(payload)

    async def not_found(request: Request, record: Json, script: Json) -> Response:
        raise ApiError(404, f"Invalid URL ({request.method} {request.url.path})")

    every_method = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    responses = BASE_PATH + "/responses/{response_id}"
    routes = [
        *control.routes(),
        Route(BASE_PATH + "/responses", api(create_response, scripted=True), methods=["POST"]),
        Route(BASE_PATH + "/responses/input_tokens", api(count_input_tokens), methods=["POST"]),
        Route(BASE_PATH + "/responses/compact", api(compact), methods=["POST"]),
        Route(responses, api(retrieve_response), methods=["GET"]),
        Route(responses, api(delete_response), methods=["DELETE"]),
        Route(responses + "/cancel", api(cancel_response), methods=["POST"]),
        Route(responses + "/input_items", api(list_input_items), methods=["GET"]),
        # Last, so a known path with the wrong method also gets OpenAI's "Invalid URL".
        Route("/{path:path}", api(not_found, auth=False), methods=every_method),
    ]
    app = Starlette(routes=routes)
    app.state.fake = state
    return app


def main(argv: list[str] | None = None) -> None:
    help_ = "seconds until a background response completes"
    options = {"background_delay": {"type": float, "default": 0.5, "help": help_}}
    serve(lambda args: build_app(background_delay=args.background_delay), __doc__.splitlines()[0], argv, options)


if __name__ == "__main__":
    main()
