"""Property-based tests of the translating adapters (Anthropic, Gemini, Chat Completions,
Bedrock Converse), driven in process the way tests/golden drives them.

Requests: for generated valid Responses requests, each adapter's upstream body validates
against its provider's official SDK types (anthropic's and openai's create-params TypedDicts
as closed JSON Schemas, google-genai's models, botocore's Converse input shape), every input
text reaches the upstream, and every field kept is honoured: dropping it changes the upstream
body, unless it was refused (a 400) or named in the dropped-params list.

Streams: for generated replies (thinking, text, tool calls with their JSON arguments split,
cut or failing at any point, fed in pieces of any size), each protocol's stream, rendered by
its fake upstream, becomes a Responses stream whose every event validates with the openai SDK,
whose sequence numbers run 0, 1, 2... and which ends in one terminal event; a whole stream
folds to what the non-stream translation of the same reply gives.

The CI budget is a few examples per property; `LLMRELAY_RELIABILITY=long` runs many more.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from typing import Any

import jsonschema
import openai
import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from llmrelay import validate
from llmrelay.items import normalize
from llmrelay.providers import eventstream
from llmrelay.providers.base import Call
from llmrelay.providers.support import CORE_FIELDS, strip_unsupported
from llmrelay.streaming.events import TERMINAL
from llmrelay.streaming.sse import SSEDecoder
from tests.fakes import anthropic_upstream, bedrock_upstream, chat_upstream, gemini_upstream
from tests.golden import harness

Json = dict[str, Any]
LONG = os.environ.get("LLMRELAY_RELIABILITY") == "long"
# No shrinking: a failing example is printed as found (shrinking these took minutes).
FAST = settings(max_examples=2000 if LONG else 25, deadline=None, derandomize=not LONG, database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
MODELS = {
    "anthropic": "anthropic/claude-sonnet-4-5",
    "gemini": "gemini/gemini-2.5-flash",
    "chat": "groq/openai/gpt-oss-120b",
    "bedrock": "bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0",
}
APIS = list(MODELS)
EVENT = TypeAdapter(ResponseStreamEvent)
# Values that ask for nothing beyond the default; fields honoured elsewhere than in the request
# body (`include` shapes the reply, `truncation: auto` trims the history against a known window).
NO_TRACE = {
    ("tool_choice", "auto"),
    ("parallel_tool_calls", "True"),
    ("truncation", "disabled"),
    ("text", "{'format': {'type': 'text'}}"),
    ("text", "{'format': {'type': 'text'}, 'verbosity': 'medium'}"),
}
NOT_IN_BODY = {"include", "truncation"}
TWINS = {"user": "safety_identifier", "safety_identifier": "user"}
# Sent where the provider's API reference lists them, though the installed SDK's types do not
# (anthropic 2.x dropped the sampling parameters from MessageCreateParams).
UNTYPED = {"anthropic": {"temperature", "top_p"}}

# -- strategies: Responses requests -------------------------------------------------------------

ident = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
words = st.from_regex(r"[a-z]{1,8}( [a-z]{1,8}){0,5}", fullmatch=True)
scalars = st.one_of(st.integers(-1000, 1000), words, st.booleans())
args = st.dictionaries(ident, scalars, max_size=3)


@st.composite
def function_tools(draw: st.DrawFn) -> list[Json]:
    names = draw(st.lists(ident, max_size=3, unique=True))
    tools = []
    for name in names:
        props = draw(st.lists(ident, max_size=3, unique=True))
        tool: Json = {"type": "function", "name": name,
                      "parameters": {"type": "object", "properties": {p: {"type": "string"} for p in props},
                                     "required": props[:1]}}  # fmt: skip
        if draw(st.booleans()):
            tool["description"] = draw(words)
        tools.append(tool)
    return tools


@st.composite
def inputs(draw: st.DrawFn) -> str | list[Json]:
    if draw(st.booleans()):
        return draw(words)
    out: list[Json] = []
    for i in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["user", "parts", "developer", "assistant", "call"]))
        if kind == "user":
            out.append({"role": "user", "content": draw(words)})
        elif kind == "parts":
            parts = draw(st.lists(words.map(lambda t: {"type": "input_text", "text": t}), min_size=1, max_size=2))
            out.append({"type": "message", "role": "user", "content": parts})
        elif kind == "developer":
            out.append({"role": draw(st.sampled_from(["developer", "system"])), "content": draw(words)})
        elif kind == "assistant":
            out.append({"role": "assistant", "content": draw(words)})
        else:
            call_id = f"call_{i}"
            out.append({"type": "function_call", "call_id": call_id, "name": draw(ident),
                        "arguments": json.dumps(draw(args))})  # fmt: skip
            out.append({"type": "function_call_output", "call_id": call_id, "output": draw(words)})
    if not out or out[-1].get("type") != "function_call_output":
        out.append({"role": "user", "content": draw(words)})
    return out


@st.composite
def text_options(draw: st.DrawFn) -> Json:
    kind = draw(st.sampled_from(["text", "json_object", "json_schema"]))
    fmt: Json = {"type": kind}
    if kind == "json_schema":
        props = draw(st.lists(ident, min_size=1, max_size=3, unique=True))
        fmt |= {"name": draw(ident), "strict": True,
                "schema": {"type": "object", "properties": {p: {"type": "string"} for p in props},
                           "required": props, "additionalProperties": False}}  # fmt: skip
    out: Json = {"format": fmt}
    if draw(st.booleans()):
        out["verbosity"] = draw(st.sampled_from(["low", "medium", "high"]))
    return out


@st.composite
def create_requests(draw: st.DrawFn) -> Json:
    params: Json = {"input": draw(inputs())}
    tools = draw(function_tools())
    optional = {
        "instructions": words,
        "temperature": st.floats(0, 2, allow_nan=False).map(lambda x: round(x, 2)),
        "top_p": st.floats(0, 1, allow_nan=False).map(lambda x: round(x, 2)),
        "max_output_tokens": st.integers(1, 32_000),
        "reasoning": st.fixed_dictionaries({}, optional={
            "effort": st.sampled_from(["none", "minimal", "low", "medium", "high"]),
            "summary": st.sampled_from(["auto", "concise", "detailed"])}),
        "text": text_options(),
        "parallel_tool_calls": st.booleans(),
        "user": ident,
        "safety_identifier": ident,
        "prompt_cache_key": ident,
        "service_tier": st.sampled_from(["auto", "default", "flex", "priority"]),
        "truncation": st.sampled_from(["auto", "disabled"]),
        "include": st.just(["reasoning.encrypted_content"]),
        "store": st.booleans(),
        "metadata": st.dictionaries(ident, words, max_size=2),
    }  # fmt: skip
    for name, strategy in optional.items():
        if draw(st.integers(0, 3)) == 0:
            params[name] = draw(strategy)
    if tools:
        params["tools"] = tools
        choices = ["auto", "none", "required", *({"type": "function", "name": t["name"]} for t in tools)]
        if draw(st.booleans()):
            params["tool_choice"] = draw(st.sampled_from(choices))
    return params


# -- the adapters, in process ---------------------------------------------------------------------


def make_call(api: str, params: Json) -> Call:
    new_id = harness.counter_ids()
    return Call(
        id=new_id("resp"),
        params=params,
        deployment=harness.deployment(params["model"], harness.BASES[api]),
        input_items=normalize(copy.deepcopy(params.get("input") or []), new_id),
        created_at=harness.CREATED_AT,
        new_id=new_id,
    )


def upstream(api: str, params: Json) -> tuple[Json, dict[str, str]]:
    req = harness.ADAPTERS[api].build_request(make_call(api, copy.deepcopy(params)))
    return orjson.loads(req.body or b"{}"), dict(req.headers)


def closed(schema: Any) -> Any:
    """The SDK's TypedDicts as JSON Schema, closed as the APIs are: an unknown field is an error."""
    if isinstance(schema, dict):
        out = {k: closed(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    return [closed(v) for v in schema] if isinstance(schema, list) else schema


@functools.cache
def sdk_validator(name: str) -> jsonschema.Draft202012Validator:
    if name == "anthropic":
        from anthropic.types.message_create_params import MessageCreateParamsNonStreaming as Params
    elif name == "anthropic-beta":
        from anthropic.types.beta.message_create_params import MessageCreateParamsNonStreaming as Params
    else:
        from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming as Params
    return jsonschema.Draft202012Validator(closed(TypeAdapter(Params).json_schema()))


@functools.cache
def gemini_fields() -> dict[str, TypeAdapter[Any]]:
    from google.genai import types

    return {"contents": TypeAdapter(list[types.Content]), "systemInstruction": TypeAdapter(types.Content),
            "tools": TypeAdapter(list[types.Tool]), "toolConfig": TypeAdapter(types.ToolConfig),
            "generationConfig": TypeAdapter(types.GenerationConfig),
            "safetySettings": TypeAdapter(list[types.SafetySetting])}  # fmt: skip


@functools.cache
def converse_shape() -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model("bedrock-runtime").operation_model("Converse").input_shape


def check_with_sdk(api: str, body: Json, headers: dict[str, str]) -> None:
    if api in ("anthropic", "chat"):
        beta = api == "anthropic" and "anthropic-beta" in {k.lower() for k in headers}
        typed = {k: v for k, v in body.items() if k not in UNTYPED.get(api, ())}
        errors = list(sdk_validator(api + ("-beta" if beta else "")).iter_errors(typed))
        assert not errors, [f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:3]]
    elif api == "gemini":
        fields = gemini_fields()
        assert set(body) <= set(fields), f"unknown fields {set(body) - set(fields)}"
        for name, value in body.items():
            fields[name].validate_python(value)
    else:
        from botocore.validate import ParamValidator

        report = ParamValidator().validate({"modelId": "m", **body}, converse_shape())
        assert not report.has_errors(), report.generate_report()


def input_texts(params: Json) -> list[str]:
    texts = [params["input"]] if isinstance(params["input"], str) else []
    for item in params["input"] if isinstance(params["input"], list) else []:
        content = item.get("content")
        texts += [content] if isinstance(content, str) else [p["text"] for p in content or []]
        texts += [item["output"]] if item.get("type") == "function_call_output" else []
    return texts + ([params["instructions"]] if params.get("instructions") else [])


@pytest.mark.parametrize("api", APIS)
@FAST
@given(body=create_requests())
def test_upstream_request_is_valid_and_drops_nothing_silently(api: str, body: Json) -> None:
    params = {"model": MODELS[api], **copy.deepcopy(body)}
    validate.check_create(copy.deepcopy(params))  # a valid request: llmrelay's own checks agree
    try:
        dropped = strip_unsupported(params, harness.ADAPTERS[api].support, drop=True)
        sent_body, headers = upstream(api, params)
    except openai.BadRequestError:
        return  # refused, with an error that says why: allowed
    check_with_sdk(api, sent_body, headers)
    sent = orjson.dumps(sent_body).decode()
    for text in input_texts(params):
        assert json.dumps(text)[1:-1] in sent, f"input text {text!r} never reached {api}"
    for name, value in params.items():
        if name in CORE_FIELDS or name in NOT_IN_BODY or value in (None, {}, []) or (name, str(value)) in NO_TRACE:
            continue
        if name in ("tool_choice", "parallel_tool_calls") and not params.get("tools"):
            continue  # about tools: nothing to say without them
        if name == "parallel_tool_calls" and params.get("tool_choice") == "none":
            continue  # no tool calls at all: nothing for it to say either
        if name == "reasoning" and api in ("anthropic", "bedrock") and 0 < params.get("max_output_tokens", 1e9) <= 1024:
            continue  # Claude thinks in at least 1024 tokens, which must fit under max_tokens: off by design
        if name == "reasoning" and value.get("effort") == "none":
            continue  # thinking off, the default where a provider thinks only when asked
        if name == "reasoning" and api == "chat" and "effort" not in value:
            continue  # a summary is the reply's reasoning_content, whenever the server sends it
        if name == "prompt_cache_key" and api in ("anthropic", "bedrock"):
            continue  # Claude caches at the marks llmrelay places, and none on a prefix too short to cache
        if name == "tools" and params.get("tool_choice") == "none":
            continue  # tools the model may not call: a provider without "none" is sent none
        if (twin := TWINS.get(name)) and params.get(twin) == value:
            continue  # one upstream field for both, and the same value: still sent
        try:
            without, _ = upstream(api, {k: v for k, v in params.items() if k != name})
        except openai.BadRequestError:
            continue
        assert without != sent_body, f"{name}={value!r} left no trace in the {api} request, and dropped={dropped}"


# -- strategies: provider replies ---------------------------------------------------------------


@st.composite
def replies(draw: st.DrawFn) -> Json:
    reply: Json = {
        "thinking": draw(st.none() | words),
        "text": draw(st.none() | words),
        "calls": draw(st.lists(st.tuples(ident, args), max_size=2)),
        "max_tokens": draw(st.booleans()),
        "fault": draw(st.none() | st.tuples(st.sampled_from(["cut", "error"]), st.integers(0, 60))),
        "chunk": draw(st.integers(1, 80)),
        "usage": (draw(st.integers(1, 500)), draw(st.integers(1, 500))),
    }
    if not (reply["thinking"] or reply["text"] or reply["calls"]):
        reply["text"] = "ok"
    return reply


def anthropic_wire(r: Json) -> tuple[bytes, list[bytes], bytes]:
    content: list[Json] = []
    if r["thinking"]:
        content.append({"type": "thinking", "thinking": r["thinking"], "signature": "sig"})
    if r["text"]:
        content.append({"type": "text", "text": r["text"]})
    content += [{"type": "tool_use", "id": f"toolu_{i}", "name": n, "input": a} for i, (n, a) in enumerate(r["calls"])]
    stop = "max_tokens" if r["max_tokens"] else "tool_use" if r["calls"] else "end_turn"
    final = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": content,
             "stop_reason": stop, "stop_sequence": None,
             "usage": {"input_tokens": r["usage"][0], "output_tokens": r["usage"][1]}}  # fmt: skip
    frames = [anthropic_upstream.sse_frame(e) for e in anthropic_upstream.stream_events(final)]
    error = anthropic_upstream.sse_frame({"type": "error", "error": {"type": "overloaded_error", "message": "x"}})
    return orjson.dumps(final), frames, error


def chat_wire(r: Json) -> tuple[bytes, list[bytes], bytes]:
    calls = [{"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
             for i, (n, a) in enumerate(r["calls"])]  # fmt: skip
    message: Json = {"role": "assistant", "content": r["text"], "refusal": None}
    message |= {"reasoning_content": r["thinking"]} if r["thinking"] else {}
    message |= {"tool_calls": calls} if calls else {}
    stop = "length" if r["max_tokens"] else "tool_calls" if calls else "stop"
    usage = {"prompt_tokens": r["usage"][0], "completion_tokens": r["usage"][1], "total_tokens": sum(r["usage"])}
    final = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-oss-120b",
             "service_tier": None, "system_fingerprint": None, "usage": usage,
             "choices": [{"index": 0, "message": message, "finish_reason": stop, "logprobs": None}]}  # fmt: skip
    frames = [chat_upstream.data_frame(c) for c in chat_upstream.stream_chunks(final, include_usage=True)]
    frames.append(b"data: [DONE]\n\n")
    return orjson.dumps(final), frames, chat_upstream.data_frame({"error": {"message": "x", "type": "server_error"}})


def gemini_wire(r: Json) -> tuple[bytes, list[bytes], bytes]:
    parts: list[Json] = [{"text": r["thinking"], "thought": True}] if r["thinking"] else []
    parts += [{"text": r["text"]}] if r["text"] else []
    parts += [{"functionCall": {"name": n, "args": a}} for n, a in r["calls"]]
    usage = {"promptTokenCount": r["usage"][0], "candidatesTokenCount": r["usage"][1],
             "totalTokenCount": sum(r["usage"])}  # fmt: skip
    final = {"candidates": [{"content": {"parts": parts, "role": "model"}, "index": 0,
                             "finishReason": "MAX_TOKENS" if r["max_tokens"] else "STOP"}],
             "usageMetadata": usage, "modelVersion": "gemini-2.5-flash", "responseId": "r1"}  # fmt: skip
    frames = [gemini_upstream.sse_frame(c) for c in gemini_upstream.stream_chunks(copy.deepcopy(final))]
    error = gemini_upstream.sse_frame({"error": {"code": 500, "message": "x", "status": "INTERNAL"}})
    return orjson.dumps(final), frames, error


def bedrock_wire(r: Json) -> tuple[bytes, list[bytes], bytes]:
    content: list[Json] = []
    if r["thinking"]:
        content.append({"reasoningContent": {"reasoningText": {"text": r["thinking"], "signature": "sig"}}})
    content += [{"text": r["text"]}] if r["text"] else []
    content += [{"toolUse": {"toolUseId": f"tu_{i}", "name": n, "input": a}} for i, (n, a) in enumerate(r["calls"])]
    stop = "max_tokens" if r["max_tokens"] else "tool_use" if r["calls"] else "end_turn"
    final = {"output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop,
             "usage": {"inputTokens": r["usage"][0], "outputTokens": r["usage"][1], "totalTokens": sum(r["usage"])},
             "metrics": {"latencyMs": 1}}  # fmt: skip
    frames = [eventstream.event(kind, orjson.dumps(p)) for kind, p in bedrock_upstream.stream_events(final)]
    return orjson.dumps(final), frames, eventstream.exception("throttlingException", b'{"message":"x"}')


WIRES = {"anthropic": anthropic_wire, "chat": chat_wire, "gemini": gemini_wire, "bedrock": bedrock_wire}


def stream_of(api: str, wire: bytes, chunk: int) -> tuple[list[Json], Json | None]:
    """The core's stream path: the bytes in `chunk`-sized pieces through the decoder and the
    translator, then `finish()`. Each event is taken as serialised the moment it was emitted."""
    adapter = harness.ADAPTERS[api]
    call = make_call(api, {"model": MODELS[api], "input": "hi", "stream": True})
    translator = adapter.stream_translator(call)
    decoder = getattr(adapter, "frame_decoder", SSEDecoder)()
    emitted: list[Json] = []
    for start in range(0, len(wire), chunk):
        for frame in decoder.feed(wire[start : start + chunk]):
            emitted += [orjson.loads(orjson.dumps(e.data)) for e in translator.feed(frame)]
    for frame in decoder.finish():
        emitted += [orjson.loads(orjson.dumps(e.data)) for e in translator.feed(frame)]
    emitted += [orjson.loads(orjson.dumps(e.data)) for e in translator.finish()]
    return emitted, translator.response


def comparable(response: Json) -> Json:
    """A Response without what two runs mint differently (item ids); a call's arguments as the
    JSON value they spell (a stream passes the upstream's text on, a whole reply is re-encoded)."""
    out = {k: response.get(k) for k in ("status", "incomplete_details", "usage", "error")}
    out["output"] = []
    for item in response["output"]:
        item = {k: v for k, v in item.items() if k != "id"}
        if item.get("type") == "function_call":
            item["arguments"] = json.loads(item["arguments"])
        out["output"].append(item)
    return out


@pytest.mark.parametrize("api", APIS)
@FAST
@given(reply=replies())
def test_stream_validates_and_folds_to_the_non_stream_translation(api: str, reply: Json) -> None:
    whole, frames, error = WIRES[api](reply)
    if reply["fault"] is not None:
        kind, at = reply["fault"]
        frames = frames[: at % (len(frames) + 1)] + ([error] if kind == "error" else [])
    events, final = stream_of(api, b"".join(frames), reply["chunk"])

    assert [e.get("sequence_number") for e in events] == list(range(len(events)))
    for event in events:
        EVENT.validate_python(event)
    terminals = [e for e in events if e["type"] in TERMINAL]
    assert len(terminals) == 1 and events[-1] is terminals[0], [e["type"] for e in events]
    assert final is not None
    Response.model_validate(final)
    if reply["fault"] is not None and events[-1]["type"] == "response.completed":
        return  # cut after the last event that mattered: a whole stream, checked below only when whole
    if reply["fault"] is not None:
        assert events[-1]["type"] in ("response.failed", "error", "response.incomplete")
        return
    assert events[-1]["type"] in ("response.completed", "response.incomplete")
    parsed, _ = harness.ADAPTERS[api].parse_response(whole, make_call(api, {"model": MODELS[api], "input": "hi"}))
    assert comparable(final) == comparable(parsed)
    assert comparable(events[-1]["response"]) == comparable(parsed)
