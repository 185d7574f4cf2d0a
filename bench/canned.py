"""The upstream's canned bodies (Responses, Anthropic Messages, Chat Completions), checked against the SDKs."""

from __future__ import annotations

import json
import warnings
from typing import Any

from common import API_KEY, DELTAS, Json

PIECES = [f"tok{i:02d} " for i in range(DELTAS)]
TEXT = "".join(PIECES)
RESP_ID = "resp_0123456789abcdef0123456789abcdef0123456789abcdef"
MSG_ID = "msg_0123456789abcdef0123456789abcdef0123456789abcdef"
CREATED = 1700000000


def _responses_usage() -> Json:
    return {
        "input_tokens": 12,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": DELTAS,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 12 + DELTAS,
    }


def _part(text: str) -> Json:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def _message(status: str, content: list[Json]) -> Json:
    return {"id": MSG_ID, "type": "message", "status": status, "content": content, "role": "assistant"}


def responses_body(status: str = "completed", background: bool = False) -> Json:
    done = status == "completed"
    return {
        "id": RESP_ID,
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "background": background,
        "completed_at": CREATED + 1 if done else None,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": 256,
        "max_tool_calls": None,
        "model": "gpt-4o-2024-08-06",
        "output": [_message("completed", [_part(TEXT)])] if done else [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "prompt_cache_key": None,
        "reasoning": {"effort": None, "summary": None},
        "safety_identifier": None,
        "service_tier": "default",
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_logprobs": 0,
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": _responses_usage() if done else None,
        "user": None,
        "metadata": {},
    }


def responses_events() -> list[Json]:
    """OpenAI's event sequence for one streamed text answer."""
    where = {"item_id": MSG_ID, "output_index": 0, "content_index": 0}
    events: list[Json] = [
        {"type": "response.created", "response": responses_body("in_progress")},
        {"type": "response.in_progress", "response": responses_body("in_progress")},
        {"type": "response.output_item.added", "output_index": 0, "item": _message("in_progress", [])},
        {"type": "response.content_part.added", **where, "part": _part("")},
    ]
    events += [
        {"type": "response.output_text.delta", **where, "delta": p, "logprobs": [], "obfuscation": "a1b2c3d4e5f"}
        for p in PIECES
    ]
    events += [
        {"type": "response.output_text.done", **where, "text": TEXT, "logprobs": []},
        {"type": "response.content_part.done", **where, "part": _part(TEXT)},
        {"type": "response.output_item.done", "output_index": 0, "item": _message("completed", [_part(TEXT)])},
        {"type": "response.completed", "response": responses_body()},
    ]
    return [{"type": e["type"], "sequence_number": i, **e} for i, e in enumerate(events)]


def anthropic_body() -> Json:
    return {
        "id": "msg_01BenchBenchBenchBenchBench",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": TEXT}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": _anthropic_usage(DELTAS),
    }


def _anthropic_usage(output_tokens: int) -> Json:
    return {
        "input_tokens": 12,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def anthropic_events() -> list[Json]:
    start = {**anthropic_body(), "content": [], "stop_reason": None, "usage": _anthropic_usage(1)}
    events: list[Json] = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
    ]
    events += [{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}} for p in PIECES]
    events += [
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": DELTAS},
        },
        {"type": "message_stop"},
    ]
    return events


def chat_body() -> Json:
    return {
        "id": "chatcmpl-bench0123456789",
        "object": "chat.completion",
        "created": CREATED,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": TEXT, "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": DELTAS, "total_tokens": 12 + DELTAS},
        "service_tier": "default",
        "system_fingerprint": "fp_bench",
    }


def chat_chunks() -> list[Json]:
    base = {
        "id": "chatcmpl-bench0123456789",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": "gpt-4o-2024-08-06",
        "system_fingerprint": "fp_bench",
    }

    def chunk(delta: Json, finish: str | None = None) -> Json:
        return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": p}) for p in PIECES]
    chunks.append(chunk({}, "stop"))
    chunks.append({**base, "choices": [], "usage": chat_body()["usage"]})
    return chunks


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def sse_named(events: list[Json]) -> str:
    """`event:` + `data:` frames, as OpenAI's Responses and Anthropic's Messages streams send them."""
    return "".join(f"event: {e['type']}\ndata: {_dumps(e)}\n\n" for e in events)


def sse_data(chunks: list[Json]) -> str:
    return "".join(f"data: {_dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"


# path under the upstream -> (content type, body)
def canned() -> dict[str, tuple[str, str]]:
    return {
        "/plain/v1/responses": ("application/json", _dumps(responses_body())),
        "/sse/v1/responses": ("text/event-stream", sse_named(responses_events())),
        "/plain/v1/messages": ("application/json", _dumps(anthropic_body())),
        "/sse/v1/messages": ("text/event-stream", sse_named(anthropic_events())),
        "/plain/v1/chat/completions": ("application/json", _dumps(chat_body())),
        "/sse/v1/chat/completions": ("text/event-stream", sse_data(chat_chunks())),
        BG_CREATE: ("application/json", background_bodies()["queued"]),
    }


# A background response upstream: the create answers `queued`; a GET of `BG_PREFIX<id>` answers
# `in_progress` or `completed` (nginx picks one per request, see upstream.py).
BG_CREATE = "/bg/v1/responses"
BG_PREFIX = "/bg/v1/responses/"


def background_bodies() -> dict[str, str]:
    return {s: _dumps(responses_body(s, background=True)) for s in ("queued", "in_progress", "completed")}


# Fields OpenAI's API sends that the SDK's types do not declare.
WIRE_ONLY = frozenset({"store", "obfuscation"})


def _extras(obj: Any, path: str = "") -> list[str]:
    """Keys an SDK model accepted only as extras: a canned field the SDK does not know."""
    from pydantic import BaseModel

    found: list[str] = []
    if isinstance(obj, BaseModel):
        found += [f"{path}.{k}" for k in (obj.model_extra or {}) if k not in WIRE_ONLY]
        for name in type(obj).model_fields:
            found += _extras(getattr(obj, name), f"{path}.{name}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            found += _extras(v, f"{path}[{i}]")
    return found


def check_canned(upstream: str) -> None:
    """Every canned body parses into the official SDKs' types with no unknown field, and each SDK
    client reads it through nginx as it would read the real service."""
    import anthropic
    import openai
    from anthropic.types import Message, RawMessageStreamEvent
    from openai.types.chat import ChatCompletion, ChatCompletionChunk
    from openai.types.responses import Response, ResponseStreamEvent
    from pydantic import TypeAdapter, ValidationError

    warnings.simplefilter("ignore", DeprecationWarning)  # the SDK warns about model names; any name does here
    problems: list[str] = []

    def strict(model: Any, data: Json, where: str) -> None:
        try:
            parsed = model.validate_python(data) if isinstance(model, TypeAdapter) else model.model_validate(data)
        except ValidationError as exc:
            problems.append(f"{where}: {exc}")
            return
        problems.extend(f"{where}: unknown field {p}" for p in _extras(parsed))

    strict(Response, responses_body(), "responses")
    for status, body in background_bodies().items():
        strict(Response, json.loads(body), f"background {status}")
    strict(Message, anthropic_body(), "messages")
    strict(ChatCompletion, chat_body(), "chat")
    for name, model, events in (
        ("responses stream", TypeAdapter(ResponseStreamEvent), responses_events()),
        ("messages stream", TypeAdapter(RawMessageStreamEvent), anthropic_events()),
        ("chat stream", ChatCompletionChunk, chat_chunks()),
    ):
        for i, e in enumerate(events):
            if e.get("type") != "ping":  # keep-alive frame: the SDK drops it before parsing
                strict(model, e, f"{name}[{i}]")

    oa = openai.OpenAI(base_url=f"{upstream}/plain/v1", api_key=API_KEY, max_retries=0)
    if oa.responses.create(model="gpt-4o", input="hi").output_text != TEXT:
        problems.append("openai SDK: responses output_text differs")
    if (
        oa.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        .choices[0]
        .message.content
        != TEXT
    ):
        problems.append("openai SDK: chat content differs")
    oas = openai.OpenAI(base_url=f"{upstream}/sse/v1", api_key=API_KEY, max_retries=0)
    events = list(oas.responses.create(model="gpt-4o", input="hi", stream=True))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    if "".join(deltas) != TEXT or len(deltas) != DELTAS or events[-1].type != "response.completed":
        problems.append("openai SDK: responses stream differs")
    chunks = list(
        oas.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True)
    )
    if "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) != TEXT:
        problems.append("openai SDK: chat stream differs")
    oab = openai.OpenAI(base_url=f"{upstream}{BG_CREATE.removesuffix('/responses')}", api_key=API_KEY, max_retries=0)
    queued = oab.responses.create(model="gpt-4o", input="hi", background=True)
    polled = {oab.responses.retrieve(queued.id).status for _ in range(20)}
    if queued.status != "queued" or not polled <= {"in_progress", "completed"} or "completed" not in polled:
        problems.append(f"openai SDK: background create {queued.status}, polls {sorted(polled)}")
    an = anthropic.Anthropic(base_url=f"{upstream}/plain", api_key=API_KEY, max_retries=0)
    msg = an.messages.create(model="claude-sonnet-4-5", max_tokens=256, messages=[{"role": "user", "content": "hi"}])
    if msg.content[0].type != "text" or msg.content[0].text != TEXT:
        problems.append("anthropic SDK: message differs")
    ans = anthropic.Anthropic(base_url=f"{upstream}/sse", api_key=API_KEY, max_retries=0)
    with ans.messages.stream(
        model="claude-sonnet-4-5", max_tokens=256, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    if "".join(texts) != TEXT or len(texts) != DELTAS or final.stop_reason != "end_turn":
        problems.append("anthropic SDK: message stream differs")
    if problems:
        raise SystemExit("canned upstream bodies do not match the SDKs:\n  " + "\n  ".join(problems))
