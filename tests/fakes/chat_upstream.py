"""Fake OpenAI Chat Completions upstream, as vLLM, Groq, Mistral or DeepSeek serve it.

Run with ``python -m tests.fakes.chat_upstream --port N [--models a,b]``. With ``--models`` an
unknown model gets OpenAI's 404 ``model_not_found``; without it any model is served.

The "model" is deterministic: it answers ``Echo (turns=N): <last user text>`` where N counts the
user messages, calls the first function tool (``{"q": <last user text>}``) until a ``tool``
message follows the last user message, then says ``Echo (turns=N): tool said <content>``. With
``reasoning_effort`` the message also carries ``reasoning_content`` (DeepSeek / vLLM style); with a
``json_schema`` / ``json_object`` response format the content is ``{"echo": ..., "turns": N}``.

A reply script posted to ``/_fake/enqueue`` (a dict, or a list of dicts) is consumed, FIFO, by the
next ``POST /v1/chat/completions``:

- ``{"status": 429, "headers": {...}, "body": {...} | "text"}``: answer with that error
  (an OpenAI-shaped default body when ``body`` is omitted)
- ``{"headers": {...}}``: extra headers on a normal reply
- ``{"delay": 0.2}``: wait before answering
- ``{"delta_delay": 0.3}``: sleep before each streamed delta chunk
- ``{"fail_after_events": 3}``: stream 3 chunks, then ``data: {"error": {...}}``, then close
  (non-streaming: a 500 ``server_error``)
- ``{"drop_after_events": 3}``: stream 3 chunks, then cut the connection (non-streaming: half the body)
- ``{"text": "..."}``: the assistant text to produce instead of the echo

Requests, scripts, the ``/_fake/*`` routes and the misbehaviours every fake offers live in
``tests.fakes.control``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.control import Control, DropConnection, TruncatedResponse, json_response, serve
from tests.fakes.openai_model import ApiError
from tests.fakes.openai_upstream import BAD_KEY, DEFAULT_ERRORS, MISSING_KEY, SERVER_ERROR, error_response

Json = dict[str, Any]
Endpoint = Callable[[Request], Awaitable[Response]]

BASE_PATH = "/v1"
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
# Word-sized chunks whose concatenation is exactly the original text.
CHUNK = re.compile(r"\S+\s*|\s+")
FINGERPRINT = "fp_fake0001"
DELTAS = ("content", "reasoning_content", "tool_calls")  # the chunks a delta_delay script slows down


def words(text: str) -> int:
    return len(text.split())


# --- model ----------------------------------------------------------------------------------


def content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = [p.get("text") or p.get("refusal") or "" for p in content or [] if isinstance(p, dict)]
    return " ".join(p for p in parts if p)


def validate(body: Any) -> None:
    """The OpenAI 400s an adapter is most likely to trip over."""
    if not isinstance(body, dict):
        raise ApiError(400, "We could not parse the JSON body of your request.")
    for field in ("model", "messages"):
        if body.get(field) is None:
            raise ApiError(
                400, f"Missing required parameter: '{field}'.", param=field, code="missing_required_parameter"
            )
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        raise ApiError(
            400,
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            param="messages",
            code="empty_array",
        )
    if body.get("stream_options") is not None and body.get("stream") is not True:
        raise ApiError(
            400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.", param="stream_options"
        )
    for index, tool in enumerate(body.get("tools") or []):
        if tool.get("type") == "function" and not isinstance(tool.get("function"), dict):
            # e.g. a flat Responses-style {"type": "function", "name": ...} tool
            where = f"tools[{index}].function"
            raise ApiError(
                400, f"Missing required parameter: '{where}'.", param=where, code="missing_required_parameter"
            )
    pending: list[str] = []  # tool_call ids still waiting for their tool message
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ROLES:
            raise ApiError(
                400,
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool',"
                " and 'developer'.",
                param=f"messages[{index}].role",
                code="invalid_value",
            )
        if role == "tool":
            if message.get("tool_call_id") not in pending:
                raise ApiError(
                    400,
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with"
                    " 'tool_calls'.",
                    param=f"messages.[{index}].role",
                )
            pending.remove(message["tool_call_id"])
            continue
        if pending:
            raise unanswered(index - 1, pending)
        if role == "assistant":
            pending = [call.get("id") for call in message.get("tool_calls") or []]
    if pending:
        raise unanswered(len(messages) - 1, pending)


def unanswered(index: int, ids: list[str]) -> ApiError:
    return ApiError(
        400,
        "An assistant message with 'tool_calls' must be followed by tool messages responding to each"
        f" 'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(ids)}",
        param=f"messages.[{index}].role",
    )


def respond(body: Json, text_override: str | None = None) -> Json:
    """The ``chat.completion`` object for a validated request body."""
    messages: list[Json] = body["messages"]
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    turns = len(users)
    last_text = content_text(messages[users[-1]].get("content")) if users else ""
    answered = any(m["role"] == "tool" for m in messages[users[-1] if users else 0 :])
    last = messages[-1]
    said = f"tool said {content_text(last.get('content'))}" if last["role"] == "tool" else last_text

    functions = [t["function"] for t in body.get("tools") or [] if t.get("type") == "function"]
    choice = body.get("tool_choice", "auto")
    forced = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
    message: Json = {"role": "assistant", "content": None, "refusal": None, "annotations": []}
    reasoning = ""
    if body.get("reasoning_effort") is not None:
        reasoning = f"The user said: {said}. I will echo it."
        message["reasoning_content"] = reasoning
    finish_reason = "stop"
    if functions and choice != "none" and (forced or choice == "required" or not answered):
        name = forced or functions[0]["name"]
        arguments = json.dumps({"q": last_text})
        message["tool_calls"] = [
            {
                "id": "call_" + secrets.token_hex(12),
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }
        ]
        finish_reason = "tool_calls"
    else:
        text = text_override if text_override is not None else f"Echo (turns={turns}): {said}"
        if text_override is None and (body.get("response_format") or {}).get("type") in ("json_schema", "json_object"):
            text = json.dumps({"echo": said, "turns": turns})
        stops = body.get("stop")
        hits = [text.find(s) for s in ([stops] if isinstance(stops, str) else stops or []) if s and s in text]
        if hits:
            text = text[: min(hits)]
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        if isinstance(limit, int) and words(reasoning) + words(text) > limit:
            text = "".join(CHUNK.findall(text)[: max(limit - words(reasoning), 0)]).rstrip()
            finish_reason = "length"
        message["content"] = text

    prompt_tokens = sum(4 + words(content_text(m.get("content"))) for m in messages)
    calls = message.get("tool_calls") or []
    completion_tokens = words(reasoning) + words(message["content"] or "")
    completion_tokens += sum(words(f"{c['function']['name']} {c['function']['arguments']}") for c in calls)
    return {
        "id": "chatcmpl-" + secrets.token_hex(14),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": words(reasoning),
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }


def stream_chunks(final: Json, include_usage: bool) -> Iterator[Json]:
    """The ``chat.completion.chunk`` sequence for ``final`` (``[DONE]`` is added by the server)."""
    head = {k: final[k] for k in ("id", "created", "model", "service_tier", "system_fingerprint")}
    head["object"] = "chat.completion.chunk"
    # With include_usage every chunk carries "usage": null until the last one.
    tail: Json = {"usage": None} if include_usage else {}

    def chunk(delta: Json, finish_reason: str | None = None) -> Json:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**head, "choices": [choice], **tail}

    message = final["choices"][0]["message"]
    calls = message.get("tool_calls") or []
    yield chunk({"role": "assistant", "content": None if calls else "", "refusal": None})
    for piece in CHUNK.findall(message.get("reasoning_content") or ""):
        yield chunk({"reasoning_content": piece})
    for piece in CHUNK.findall(message["content"] or ""):
        yield chunk({"content": piece})
    for index, call in enumerate(calls):
        opening = {"index": index, "id": call["id"], "type": "function"}
        yield chunk({"tool_calls": [{**opening, "function": {"name": call["function"]["name"], "arguments": ""}}]})
        for piece in CHUNK.findall(call["function"]["arguments"]):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, final["choices"][0]["finish_reason"])
    if include_usage:
        yield {**head, "choices": [], "usage": final["usage"]}


def data_frame(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


# --- server ---------------------------------------------------------------------------------


def build_app(models: list[str] | None = None) -> Starlette:
    control = Control("chat", BASE_PATH)

    def check_auth(request: Request) -> None:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise ApiError(401, MISSING_KEY)
        if key.strip() == BAD_KEY:
            raise ApiError(401, f"Incorrect API key provided: {BAD_KEY}.", code="invalid_api_key")

    def scripted_error(script: Json) -> Response:
        status = int(script["status"])
        body = script.get("body")
        if isinstance(body, str):
            return Response(body, status_code=status, media_type="text/plain")
        if body is None:
            message, kind, code = DEFAULT_ERRORS.get(
                status, ("Scripted error.", "server_error" if status >= 500 else "invalid_request_error", None)
            )
            body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        return json_response(body, status)

    def api(handler: Callable[..., Awaitable[Response]], *, scripted: bool = False, auth: bool = True) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            record = await control.record(request)
            record["request_id"] = "req_" + secrets.token_hex(16)
            script = control.next_script(record) if scripted else {}
            if script.get("delay"):
                await asyncio.sleep(float(script["delay"]))
            if (bent := await control.before(request, record, script)) is not None:
                return bent
            try:
                if int(script.get("status", 200)) >= 400:
                    response = scripted_error(script)
                else:
                    if auth:
                        check_auth(request)
                    response = control.after(request, record, script, await handler(request, record, script))
            except ApiError as error:
                response = error_response(error)
            response.headers["x-request-id"] = record["request_id"]
            response.headers.update({str(k).lower(): str(v) for k, v in (script.get("headers") or {}).items()})
            return response

        return endpoint

    async def stream(chunks: Iterator[Json], script: Json, record: Json) -> AsyncIterator[bytes]:
        delta_delay = float(script.get("delta_delay") or 0)
        fail_after, drop_after = script.get("fail_after_events"), script.get("drop_after_events")
        finished = False
        try:
            for count, chunk in enumerate(chunks):
                if fail_after is not None and count >= int(fail_after):
                    finished = True
                    yield data_frame({"error": ApiError(500, SERVER_ERROR, type="server_error").payload()})
                    return
                if drop_after is not None and count >= int(drop_after):
                    finished = True
                    raise DropConnection("scripted drop_after_events")
                if delta_delay and any(chunk["choices"] and chunk["choices"][0]["delta"].get(k) for k in DELTAS):
                    await asyncio.sleep(delta_delay)
                yield data_frame(chunk)
            yield b"data: [DONE]\n\n"
            finished = True
        finally:
            if not finished:
                record["disconnected"] = True

    async def create_completion(request: Request, record: Json, script: Json) -> Response:
        body = record["body"]
        validate(body)
        if models and body["model"] not in models:
            raise ApiError(
                404,
                f"The model `{body['model']}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        final = respond(body, script.get("text"))
        if body.get("stream") is True:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            chunks = stream_chunks(final, include_usage)
            return StreamingResponse(stream(chunks, script, record), media_type="text/event-stream")
        if script.get("fail_after_events") is not None:
            raise ApiError(500, SERVER_ERROR, type="server_error")
        if script.get("drop_after_events") is not None:
            return TruncatedResponse(orjson.dumps(final), media_type="application/json")
        return json_response(final)

    async def list_models(request: Request, record: Json, script: Json) -> Response:
        data = [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"} for m in models or ["fake-model"]
        ]
        return json_response({"object": "list", "data": data})

    async def not_found(request: Request, record: Json, script: Json) -> Response:
        raise ApiError(404, f"Invalid URL ({request.method} {request.url.path})")

    every_method = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    routes = [
        *control.routes(),
        Route(BASE_PATH + "/chat/completions", api(create_completion, scripted=True), methods=["POST"]),
        Route(BASE_PATH + "/models", api(list_models), methods=["GET"]),
        Route("/{path:path}", api(not_found, auth=False), methods=every_method),
    ]
    app = Starlette(routes=routes)
    app.state.fake = control
    return app


def main(argv: list[str] | None = None) -> None:
    def build(args: argparse.Namespace) -> Starlette:
        return build_app([m for m in args.models.split(",") if m] or None)

    options = {"models": {"default": "", "help": "comma-separated model ids; others get a 404"}}
    serve(build, __doc__.splitlines()[0], argv, options)


if __name__ == "__main__":
    main()
