"""WebSocket mode of `/v1/responses`: `response.create` frames in, the SSE stream's events out.

One response at a time per socket. Responses created with `store: false` live in the
connection's memory only, so `previous_response_id` can continue them on this socket; a
failed continuation evicts the response it continued.
"""

from __future__ import annotations

import logging
from typing import Any

import openai
import orjson
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from .. import errors
from ..relay import Relay
from ..store.base import StoredResponse
from .auth import Auth, caller_of, refuse_call_options

log = logging.getLogger("llmrelay.proxy")


async def responses_socket(ws: WebSocket, relay: Relay, auth: Auth) -> None:
    try:
        await auth.owner(ws)
    except openai.APIStatusError as exc:  # answered in HTTP, as any other route would (401, 503)
        body = orjson.dumps(errors.error_body(exc))
        await ws.send_denial_response(Response(body, exc.status_code, media_type="application/json"))
        return
    await ws.accept()
    memory: dict[str, StoredResponse] = {}
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is None:  # a binary frame: the protocol is JSON text frames
                message_text = "Binary frames are not accepted: send each event as a text frame holding JSON."
                await _send_error(ws, errors.bad_request(message_text, code="invalid_frame"))
                continue
            await _serve_one(ws, relay, auth, memory, message["text"])
    except WebSocketDisconnect:
        return


async def _serve_one(ws: WebSocket, relay: Relay, auth: Auth, memory: dict[str, StoredResponse], text: str) -> None:
    try:
        frame = orjson.loads(text)
    except orjson.JSONDecodeError:
        frame = None
    if not isinstance(frame, dict):
        await _send_error(ws, errors.bad_request("Each frame must be a JSON object.", code="invalid_json"))
        return
    kind = frame.pop("type", None)
    stream_id = frame.pop("stream_id", None)
    if kind != "response.create":
        message = f"Unsupported event type {kind!r}: this server accepts 'response.create'."
        await _send_error(ws, errors.bad_request(message, param="type", code="unsupported_event"), stream_id)
        return
    previous = frame.get("previous_response_id")
    sent = 0
    try:
        owner = await auth.owner(ws)  # checked per response, so a deleted key stops working here too
        refuse_call_options(frame)
        meta = {"caller": caller_of(ws)}
        events = await relay.stream({**frame, "stream": True}, owner=owner, memory=memory, meta=meta)
        async for event in events:
            data: dict[str, Any] = event.data
            if event.type == "error" and "error" not in data:  # the SSE grammar's error, in WS shape
                data = {"type": "error", "sequence_number": data.get("sequence_number"),
                        "error": {"type": "server_error", "code": data.get("code"), "message": data.get("message"),
                                  "param": data.get("param")}}  # fmt: skip
            await ws.send_text(orjson.dumps({**data, "stream_id": stream_id} if stream_id else data).decode())
            sent += 1
    except openai.APIStatusError as exc:
        memory.pop(previous, None)
        await _send_error(ws, exc, stream_id)
    except openai.APIError as exc:  # the upstream unreachable, or silent too long
        memory.pop(previous, None)
        await _send_error(ws, errors.upstream_failure_status(exc), stream_id)


async def _send_error(ws: WebSocket, exc: openai.APIStatusError, stream_id: str | None = None) -> None:
    event: dict[str, Any] = {"type": "error", "status": exc.status_code, "error": errors.error_body(exc)["error"]}
    if stream_id:
        event["stream_id"] = stream_id
    await ws.send_text(orjson.dumps(event).decode())
