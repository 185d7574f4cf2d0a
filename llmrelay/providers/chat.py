"""Chat Completions servers <-> Responses (vLLM, Groq, Mistral, DeepSeek, Together, Fireworks,
Ollama, any OpenAI-compatible `/chat/completions`).

Request mapping
| Responses                          | Chat Completions                                              |
|------------------------------------|---------------------------------------------------------------|
| instructions, system/developer msg | leading system message / system message                       |
| message input_text / output_text   | user / assistant message (plain string when all parts are text) |
| input_image                        | content part {type: image_url, image_url: {url, detail}}      |
| input_file (file_data)             | content part {type: file, file: {file_data, filename}}        |
| function_call (consecutive ones)   | one assistant message with tool_calls                         |
| function_call_output               | {role: tool, tool_call_id, content}                           |
| reasoning                          | not replayed (chat servers take no reasoning input)           |
| tools: function                    | {type: function, function: {name, description, parameters, strict}} |
| tool_choice, parallel_tool_calls   | tool_choice ({type: function, function: {name}}), parallel_tool_calls |
| text.format json_schema / object   | response_format {type: json_schema, json_schema: {...}} / json_object |
| reasoning.effort                   | reasoning_effort                                              |
| max_output_tokens                  | max_tokens                                                    |
| temperature, top_p, user           | temperature, top_p, user                                      |
| stream                             | stream + stream_options.include_usage                         |

Output mapping: reasoning_content (or reasoning) -> reasoning item with a summary; content ->
message/output_text; refusal -> refusal part; tool_calls -> function_call items;
finish_reason length -> incomplete (max_output_tokens), content_filter -> incomplete
(content_filter); usage with cached and reasoning token details.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from .. import errors
from ..streaming.events import StreamEvent
from ..streaming.sse import Frame
from ..transport import HttpRequest, openai_error
from . import convert
from .base import Call, Json, usage
from .support import Support
from .translator import BuilderTranslator

NAME = "chat"
SUPPORT = Support(
    NAME,
    fields=frozenset(
        {
            "tools",
            "tool_choice",
            "parallel_tool_calls",
            "text",
            "reasoning",
            "max_output_tokens",
            "temperature",
            "top_p",
            "user",
            "include",
            "truncation",
        }
    ),
    includes=frozenset({"reasoning.encrypted_content"}),
)
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


class Chat:
    support = SUPPORT
    fetches_urls = frozenset({"input_image"})  # image_url takes URLs; a file only as file_data

    def build_request(self, call: Call) -> HttpRequest:
        p = call.params
        messages = _messages(convert.conversation(call))
        if p.get("instructions"):
            messages.insert(0, {"role": "system", "content": convert.text_of(p["instructions"])})
        body: Json = {"model": call.deployment.model, "messages": messages}
        if p.get("max_output_tokens"):
            body["max_tokens"] = p["max_output_tokens"]
        for name in ("temperature", "top_p", "user"):
            if p.get(name) is not None:
                body[name] = p[name]
        if effort := (p.get("reasoning") or {}).get("effort"):
            body["reasoning_effort"] = effort
        tools = [_tool(t) for t in p.get("tools") or []]
        if tools:
            body["tools"] = tools
            if p.get("parallel_tool_calls") is not None:
                body["parallel_tool_calls"] = p["parallel_tool_calls"]
        if (choice := p.get("tool_choice")) is not None and (tools or choice == "none"):
            body["tool_choice"] = (
                {"type": "function", "function": {"name": choice["name"]}} if isinstance(choice, dict) else choice
            )
        if fmt := convert.json_format(p):
            body["response_format"] = _response_format(fmt)
        if call.stream:
            body.update(stream=True, stream_options={"include_usage": True})
        body.update(call.extra_body)
        headers = {"content-type": "application/json", **call.deployment.auth_headers(), **call.extra_headers}
        url = call.deployment.url("/chat/completions")
        return HttpRequest("POST", url, headers, orjson.dumps(body), call.deployment.credentials)

    def parse_response(self, body: bytes, call: Call) -> tuple[Json, None]:
        completion = orjson.loads(body)
        t = Translator(call)
        choice = (completion.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        t.begin()
        t.delta(message, whole=True)
        t.finish_reason = choice.get("finish_reason")
        t.usage = completion.get("usage")
        t.done()
        assert t.response is not None
        return t.response, None

    def stream_translator(self, call: Call) -> Translator:
        return Translator(call)

    def parse_error(self, status: int, body: bytes, headers: Mapping[str, str]) -> errors.APIStatusError:
        err = openai_error(status, body, headers)
        return convert.overflow_error(status, err.message, headers=errors.passthrough_headers(headers)) or err


def _messages(history: list[Json]) -> list[Json]:
    messages: list[Json] = []
    for item in history:
        kind = item.get("type") or "message"
        if kind == "message":
            role = item.get("role", "user")
            messages.append({"role": "system" if role == "developer" else role, "content": _content(item)})
        elif kind == "function_call":
            function = {"name": convert.tool_name(item), "arguments": item.get("arguments") or "{}"}
            call = {"id": item["call_id"], "type": "function", "function": function}
            last = messages[-1] if messages else None
            if last and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            elif last and last["role"] == "assistant" and not last.get("tool_calls"):
                last["tool_calls"] = [call]  # text then calls: one assistant turn
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append(
                {"role": "tool", "tool_call_id": item["call_id"], "content": convert.text_of(item.get("output"))}
            )
        elif kind in ("reasoning", "web_search_call"):
            continue  # chat servers take neither as input
        else:
            raise convert.unsupported_input(kind, NAME)
    return messages


def _content(item: Json) -> str | list[Json]:
    parts = list(convert.parts(item))
    if all(p.get("type") in ("input_text", "output_text", "text", "refusal") for p in parts):
        return "".join(p.get("text") or p.get("refusal") or "" for p in parts)
    out: list[Json] = []
    for p in parts:
        kind = p.get("type")
        if kind in ("input_text", "output_text", "text"):
            out.append({"type": "text", "text": p.get("text", "")})
        elif kind == "input_image" and p.get("image_url"):
            out.append({"type": "image_url", "image_url": {"url": p["image_url"], "detail": p.get("detail") or "auto"}})
        elif kind == "input_file" and p.get("file_data"):
            file = {"file_data": p["file_data"], "filename": p.get("filename") or "file"}
            out.append({"type": "file", "file": file})
        else:
            raise convert.unsupported_input(f"content part '{kind}'", NAME)
    return out


def _tool(tool: Json) -> Json:
    fn: Json = {"name": tool["name"], "parameters": tool.get("parameters") or {"type": "object", "properties": {}}}
    if tool.get("description"):
        fn["description"] = tool["description"]
    if tool.get("strict") is not None:
        fn["strict"] = tool["strict"]
    return {"type": "function", "function": fn}


def _response_format(fmt: Json) -> Json:
    if fmt["type"] == "json_object":
        return {"type": "json_object"}
    schema = {"name": fmt.get("name") or "response", "schema": fmt.get("schema") or {}}
    if fmt.get("strict") is not None:
        schema["strict"] = fmt["strict"]
    return {"type": "json_schema", "json_schema": schema}


class Translator(BuilderTranslator):
    """Chat completion chunks (or one whole message) -> Responses events."""

    def __init__(self, call: Call) -> None:
        super().__init__(call)
        self.finish_reason: str | None = None
        self.usage: Json | None = None
        self._calls: dict[int, str] = {}  # tool call index -> call id, to spot a new call
        self._open_call: int | None = None

    def feed(self, frame: Frame) -> list[StreamEvent]:
        if frame.data.strip() == b"[DONE]":
            return self.done()
        chunk = orjson.loads(frame.data)
        if isinstance(chunk.get("error"), dict):
            return self.fail(chunk["error"].get("message") or "The upstream stream failed.")
        out = self.begin()
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            out += self.delta(choice.get("delta") or {})
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
        return out

    def delta(self, delta: Json, *, whole: bool = False) -> list[StreamEvent]:
        b = self.builder
        out: list[StreamEvent] = []
        if reasoning := delta.get("reasoning_content") or delta.get("reasoning"):
            out += b.reasoning(reasoning)
        if delta.get("content"):
            out += b.text(delta["content"])
        if delta.get("refusal"):
            out += b.refusal(delta["refusal"])
        for i, tc in enumerate(delta.get("tool_calls") or []):
            index = tc.get("index", i)
            fn = tc.get("function") or {}
            if index != self._open_call:
                self._open_call = index
                self._calls[index] = tc.get("id") or f"call_{index}"
                out += b.function_call(self._calls[index], fn.get("name") or "")
            if fn.get("arguments"):
                out += b.function_arguments(fn["arguments"])
            elif whole:
                out += b.function_arguments("{}")
        return out

    def done(self) -> list[StreamEvent]:
        return self.end(usage=_usage(self.usage), incomplete_reason=_INCOMPLETE.get(self.finish_reason or ""))

    def finish(self) -> list[StreamEvent]:
        if self.response is not None:
            return []
        if self.finish_reason is not None:  # servers that end without [DONE]
            return self.done()
        return self.fail("The upstream closed the stream before the completion finished.")


def _usage(u: Json | None) -> Json:
    u = u or {}
    cached = (u.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (u.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return usage(u.get("prompt_tokens") or 0, u.get("completion_tokens") or 0, cached=cached, reasoning=reasoning)
