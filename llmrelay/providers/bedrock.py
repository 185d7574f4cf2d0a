"""AWS Bedrock Converse / ConverseStream <-> Responses, translated directly.

`bedrock/<model id | inference profile | ARN>` and `bedrock/converse/<...>` speak Converse;
Claude with a `computer_use_preview` tool (or `bedrock/invoke/<...>`) gets Claude's own
Messages body through InvokeModel(WithResponseStream), built by the Anthropic adapter.
Requests are signed with SigV4 (aws_auth.py); streams are event-stream framed (eventstream.py).

Request mapping (Converse)
| Responses                          | Converse                                                         |
|------------------------------------|------------------------------------------------------------------|
| instructions, system/developer msg | system [{text}]                                                  |
| message input_text / output_text   | messages[{role: user / assistant, content: [{text}]}]            |
| input_image data: URL / s3:// URL  | {image: {format, source: {bytes} / {s3Location: {uri}}}}         |
| input_file data: URL / s3:// URL   | {document: {format, name, source: {bytes} / {s3Location}}}       |
| function_call                      | assistant {toolUse: {toolUseId: call_id, name, input}}           |
| function_call_output               | user {toolResult: {toolUseId, content: [{text} / {image}], status}} |
| reasoning (Bedrock-signed)         | assistant {reasoningContent: {reasoningText: {text, signature}}}  |
|                                    | (or {redactedContent})                                           |
| tools: function                    | toolConfig.tools[{toolSpec: {name, description, inputSchema: {json}}}] |
| tool_choice auto/required/fn/none  | toolConfig.toolChoice {auto} / {any} / {tool: {name}}; none sends no tools |
| text.format json_schema / object   | outputConfig.textFormat {type: json_schema, structure.jsonSchema} |
| reasoning.effort                   | Claude: additionalModelRequestFields.thinking {budget_tokens}    |
|                                    | Nova: additionalModelRequestFields.reasoningConfig               |
| max_output_tokens, temperature, top_p | inferenceConfig maxTokens, temperature, topP                  |
| extra_body                         | merged into the body (guardrailConfig, performanceConfig, ...)    |

Output mapping: text -> message; reasoningContent -> reasoning (summary = its text,
encrypted_content = the signature, tagged so only Bedrock gets it back); toolUse ->
function_call; stopReason max_tokens / model_context_window_exceeded -> incomplete
(max_output_tokens), guardrail_intervened / content_filtered -> incomplete (content_filter),
malformed_model_output / malformed_tool_use -> failed; usage with cache reads as cached tokens.
Errors: Bedrock's exception names (x-amzn-ErrorType, or a stream's exception event) -> OpenAI's
statuses (ThrottlingException 429, ValidationException 400, AccessDeniedException 403,
ResourceNotFoundException 404, ModelTimeoutException 504, ServiceUnavailableException 503, ...).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from urllib.parse import quote

import orjson

from .. import errors
from ..streaming.events import StreamEvent
from ..streaming.sse import Frame
from ..transport import HttpRequest
from . import anthropic, convert
from .base import Call, Json, usage
from .eventstream import CONTENT_TYPE, FrameDecoder
from .registry import Deployment
from .support import Support
from .translator import BuilderTranslator

NAME = "bedrock"
SIGNED = "bedrock:"
REDACTED = "bedrock-redacted:"
INVOKE_VERSION = "bedrock-2023-05-31"
DEFAULT_MAX_TOKENS = 4096
SUPPORT = Support(
    NAME,
    fields=frozenset(
        [
            "tools",
            "tool_choice",
            "text",
            "reasoning",
            "max_output_tokens",
            "temperature",
            "top_p",
            "include",
            "truncation",
        ]
    ),
    tools=frozenset({"function", "computer_use_preview"}),
    includes=frozenset({"reasoning.encrypted_content"}),
)
_INCOMPLETE = {"max_tokens": "max_output_tokens", "model_context_window_exceeded": "max_output_tokens",
               "guardrail_intervened": "content_filter", "content_filtered": "content_filter"}  # fmt: skip
_MALFORMED = ("malformed_model_output", "malformed_tool_use")
# Bedrock's exception names -> (OpenAI status, code). Unlisted names keep the upstream's status.
_ERRORS = {
    "ValidationException": (400, "invalid_request_error"),
    "ServiceQuotaExceededException": (429, "rate_limit_exceeded"),
    "ThrottlingException": (429, "rate_limit_exceeded"),
    "ModelNotReadyException": (503, "model_not_ready"),
    "AccessDeniedException": (403, "permission_denied"),
    "ResourceNotFoundException": (404, "model_not_found"),
    "ModelTimeoutException": (504, "timeout"),
    "ModelErrorException": (502, "model_error"),
    "ModelStreamErrorException": (502, "model_error"),
    "InternalServerException": (500, "server_error"),
    "ServiceUnavailableException": (503, "service_unavailable"),
    # AWS refusing the deployment's own credentials: an authentication failure, not a permission.
    "UnrecognizedClientException": (401, "invalid_api_key"),
    "InvalidSignatureException": (401, "invalid_api_key"),
    "IncompleteSignatureException": (401, "invalid_api_key"),
    "ExpiredTokenException": (401, "invalid_api_key"),
    "MissingAuthenticationTokenException": (401, "invalid_api_key"),
}
_IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif",
                  "image/webp": "webp"}  # fmt: skip
_DOC_FORMATS = {"application/pdf": "pdf", "text/csv": "csv", "text/html": "html", "text/plain": "txt",
                "text/markdown": "md", "application/msword": "doc",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
                "application/vnd.ms-excel": "xls",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx"}  # fmt: skip


class Bedrock:
    support = SUPPORT

    def __init__(self) -> None:
        self._claude = _ClaudeOnBedrock()

    def frame_decoder(self) -> FrameDecoder:
        return FrameDecoder()

    def build_request(self, call: Call) -> HttpRequest:
        if _invoke(call):
            return self._claude.build_request(call)
        body = converse_body(call)
        body.update(call.extra_body)
        action = "converse-stream" if call.stream else "converse"
        return HttpRequest(
            "POST", _url(call.deployment, action), _headers(call), orjson.dumps(body), call.deployment.credentials
        )

    def count_request(self, call: Call) -> HttpRequest:
        if _invoke(call):  # counted as the Messages body it would send
            claude = self._claude.build_request(call).body or b"{}"
            count: Json = {"input": {"invokeModel": {"body": base64.b64encode(claude).decode()}}}
        else:
            keep = ("messages", "system", "toolConfig", "additionalModelRequestFields")
            count = {"input": {"converse": {k: v for k, v in converse_body(call).items() if k in keep}}}
        return HttpRequest("POST", _url(call.deployment, "count-tokens"), _headers(call), orjson.dumps(count),
                           call.deployment.credentials)  # fmt: skip

    def parse_count(self, body: bytes) -> int:
        return int(orjson.loads(body)["inputTokens"])

    def parse_response(self, body: bytes, call: Call) -> tuple[Json, None]:
        if _invoke(call):
            return self._claude.parse_response(body, call)
        t = Translator(call)
        t.whole(orjson.loads(body))
        assert t.response is not None
        return t.response, None

    def stream_translator(self, call: Call) -> Translator | InvokeTranslator:
        return InvokeTranslator(call) if _invoke(call) else Translator(call)

    def parse_error(self, status: int, body: bytes, headers: Mapping[str, str]) -> errors.APIStatusError:
        return error_from(status, body, headers)


def error_from(status: int, body: bytes, headers: Mapping[str, str]) -> errors.APIStatusError:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    payload = payload if isinstance(payload, dict) else {}
    # "ThrottlingException:http://internal.amazon.com/coral/..." or "com.amazon...#ThrottlingException"
    kind = (headers.get("x-amzn-errortype") or str(payload.get("__type") or "")).split(":", 1)[0].rsplit("#", 1)[-1]
    message = str(payload.get("message") or payload.get("Message") or body.decode(errors="replace")[:500])
    return exception_error(kind, message or f"HTTP {status}", status, errors.passthrough_headers(headers))


def exception_error(
    kind: str, message: str, status: int = 500, headers: dict[str, str] | None = None
) -> errors.APIStatusError:
    kind = kind[:1].upper() + kind[1:]  # a stream's exception events are camelCase
    if kind == "ValidationException" and "input is too long" in message.lower():  # Bedrock's own wording
        return errors.status_error(400, message, param="input", code="context_length_exceeded", headers=headers)
    if too_long := convert.overflow_error(400 if kind == "ValidationException" else status, message, headers=headers):
        return too_long
    mapped, code = _ERRORS.get(kind, (status, None))
    kind_type = "timeout_error" if mapped == 504 else None
    return errors.status_error(mapped, f"{kind}: {message}" if kind else message, code=code, type=kind_type,
                               headers=headers)  # fmt: skip


def stream_failure(frame: Frame) -> tuple[str, str] | None:
    """(message, code) of a stream's exception or error message; None for an event."""
    kind, _, name = (frame.event or "").partition(":")
    if kind not in ("exception", "error"):
        return None
    payload = orjson.loads(frame.data) if kind == "exception" else {"message": frame.data.decode()}
    err = exception_error(name, str(payload.get("message") or "The upstream stream failed."))
    body = err.body if isinstance(err.body, dict) else {}
    return err.message, str(body.get("code") or "server_error")


# -- request -----------------------------------------------------------------------------------


def _url(dep: Deployment, action: str) -> str:
    # A model id, inference profile id or ARN is one path segment: escape ":" and "/" as boto3 does.
    return f"{dep.api_base}/model/{quote(dep.model, safe='-._~')}/{action}"


def _headers(call: Call) -> dict[str, str]:
    accept = CONTENT_TYPE if call.stream else "application/json"
    return {"content-type": "application/json", "accept": accept, **dict(call.deployment.headers), **call.extra_headers}


def _invoke(call: Call) -> bool:
    """Claude's own Messages body through InvokeModel: asked for, or needed for computer use."""
    if call.deployment.extra.get("bedrock_route") == "invoke":
        return True
    if call.deployment.extra.get("bedrock_route") == "converse":
        return False
    tools = call.params.get("tools") or []
    return _is_claude(call.deployment.model) and any(t.get("type") == "computer_use_preview" for t in tools)


def _is_claude(model: str) -> bool:
    return "anthropic.claude" in model or "claude" in model.rsplit("/", 1)[-1]


def converse_body(call: Call) -> Json:
    p = call.params
    model = call.deployment.model
    system, messages = _messages(convert.conversation(call))
    if p.get("instructions"):
        system.insert(0, convert.text_of(p["instructions"]))
    body: Json = {"messages": messages}
    if system:
        body["system"] = [{"text": s} for s in system]
    inference: Json = {}
    extra: Json = {}
    effort = _effort(p)
    if effort and effort != "none" and _is_claude(model):
        budget = anthropic.EFFORT_BUDGET.get(effort, anthropic.EFFORT_BUDGET["medium"])
        extra["thinking"] = {"type": "enabled", "budget_tokens": budget}
        inference["maxTokens"] = p.get("max_output_tokens") or DEFAULT_MAX_TOKENS + budget
        if inference["maxTokens"] <= budget:
            extra["thinking"]["budget_tokens"] = max(1024, inference["maxTokens"] - 1)
            if inference["maxTokens"] <= 1024:
                del extra["thinking"]
    elif effort and "nova" in model:
        level = {"none": None, "minimal": "low", "xhigh": "high"}.get(effort, effort)
        extra["reasoningConfig"] = {"type": "enabled", "maxReasoningEffort": level} if level else {"type": "disabled"}
    for src, dst in (("max_output_tokens", "maxTokens"), ("temperature", "temperature"), ("top_p", "topP")):
        if p.get(src) is not None:
            inference[dst] = p[src]
    if inference:
        body["inferenceConfig"] = inference
    if extra:
        body["additionalModelRequestFields"] = extra
    if tools := _tools(p):
        body["toolConfig"] = tools
    if fmt := convert.json_format(p):
        schema = fmt.get("schema") if fmt["type"] == "json_schema" else {"type": "object"}
        spec = {"schema": orjson.dumps(schema or {"type": "object"}).decode(), "name": fmt.get("name") or "response"}
        body["outputConfig"] = {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": spec}}}
    return body


def _effort(p: Json) -> str | None:
    reasoning = p.get("reasoning") or {}
    return reasoning.get("effort") or ("medium" if reasoning.get("summary") else None)


def _messages(history: list[Json]) -> tuple[list[str], list[Json]]:
    system: list[str] = []
    messages: list[Json] = []

    def push(role: str, block: Json) -> None:
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].append(block)
        else:
            messages.append({"role": role, "content": [block]})

    for item in history:
        kind = item.get("type") or "message"
        if kind == "message":
            role = item.get("role", "user")
            if role in ("system", "developer"):
                system.append("".join(p.get("text", "") for p in convert.parts(item)))
            else:
                for part in convert.parts(item):
                    if (block := _block(part)) != {"text": ""}:  # Bedrock refuses blank text blocks
                        push("assistant" if role == "assistant" else "user", block)
        elif kind == "function_call":
            tool_use = {"toolUseId": item["call_id"], "name": convert.tool_name(item),
                        "input": convert.arguments(item.get("arguments"), NAME)}  # fmt: skip
            push("assistant", {"toolUse": tool_use})
        elif kind == "function_call_output":
            output = item.get("output")
            content = [_block(p) for p in output] if isinstance(output, list) else [{"text": convert.text_of(output)}]
            push("user", {"toolResult": {"toolUseId": item["call_id"], "content": content, "status": "success"}})
        elif kind == "reasoning":
            sig = item.get("encrypted_content") or ""
            if sig.startswith(REDACTED):
                push("assistant", {"reasoningContent": {"redactedContent": sig.removeprefix(REDACTED)}})
            elif sig.startswith(SIGNED):
                text = "".join(s.get("text", "") for s in item.get("summary") or [])
                signed = {"text": text, "signature": sig.removeprefix(SIGNED)}
                push("assistant", {"reasoningContent": {"reasoningText": signed}})
        elif kind == "web_search_call":
            continue
        else:
            raise convert.unsupported_input(kind, NAME)
    return system, messages


def _block(part: Json) -> Json:
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        return {"text": part.get("text", "")}
    if kind == "refusal":
        return {"text": part.get("refusal", "")}
    if kind == "input_image" and part.get("image_url"):
        return {"image": _media(part["image_url"], _IMAGE_FORMATS, "input_image")}
    if kind == "input_file" and (part.get("file_data") or part.get("file_url")):
        doc = _media(part.get("file_data") or part["file_url"], _DOC_FORMATS, "input_file")
        return {"document": {**doc, "name": _doc_name(part.get("filename"))}}
    raise convert.unsupported_input(f"content part '{kind}'", NAME)


def _media(url: str, formats: dict[str, str], kind: str) -> Json:
    if decoded := convert.data_url(url):
        mime, data = decoded
        if mime not in formats:
            raise errors.bad_request(
                f"Bedrock does not take {mime} for {kind}; it takes {', '.join(sorted(set(formats)))}.",
                param="input",
                code="unsupported_parameter",
            )
        return {"format": formats[mime], "source": {"bytes": data}}
    if url.startswith("s3://"):
        ext = url.rsplit(".", 1)[-1].lower()
        fmt = {"jpg": "jpeg"}.get(ext, ext)
        if fmt not in formats.values():
            raise errors.bad_request(f"Cannot tell the format of {url!r} from its name.", param="input")
        return {"format": fmt, "source": {"s3Location": {"uri": url}}}
    raise errors.bad_request(
        f"Bedrock cannot fetch {kind} URLs: send the content as a data: URL (base64) or an s3:// URI.",
        param="input",
        code="unsupported_parameter",
    )


def _doc_name(filename: str | None) -> str:
    # Bedrock allows letters, digits, single spaces, hyphens, parentheses and square brackets.
    stem = (filename or "document").rsplit(".", 1)[0]
    return re.sub(r"\s+", " ", re.sub(r"[^A-Za-z0-9\s\-()\[\]]", "-", stem)).strip() or "document"


def _tools(p: Json) -> Json | None:
    choice = p.get("tool_choice")
    specs = []
    for tool in p.get("tools") or []:
        if tool["type"] != "function":
            message = f"Tool type '{tool['type']}' needs a Claude model on Bedrock."
            raise errors.bad_request(message, param="tools", code="unsupported_parameter")
        spec: Json = {"name": tool["name"], "inputSchema": {"json": tool.get("parameters") or {"type": "object"}}}
        if tool.get("description"):
            spec["description"] = tool["description"]
        specs.append({"toolSpec": spec})
    if not specs or choice == "none":
        return None  # Converse has no "none": a model offered no tools calls none
    config: Json = {"tools": specs}
    if choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        config["toolChoice"] = {"tool": {"name": choice["name"]}}
    elif choice == "auto":
        config["toolChoice"] = {"auto": {}}
    return config


# -- response and stream -----------------------------------------------------------------------


class Translator(BuilderTranslator):
    """ConverseStream events (or a whole Converse reply, replayed as events) -> Responses events."""

    def __init__(self, call: Call) -> None:
        super().__init__(call)
        self._tool: list[str] | None = None  # the open toolUse block's argument chunks
        self._stop: str | None = None

    def feed(self, frame: Frame) -> list[StreamEvent]:
        if failure := stream_failure(frame):
            return self.fail(*failure)
        return self.event(frame.event or "", orjson.loads(frame.data))

    def event(self, kind: str, data: Json) -> list[StreamEvent]:
        b = self.builder
        if kind == "messageStart":
            return self.begin()
        if kind == "contentBlockStart":
            start = (data.get("start") or {}).get("toolUse")
            if start:
                self._tool = []
                return self.begin() + b.function_call(start["toolUseId"], start["name"])
            return []
        if kind == "contentBlockDelta":
            return self.begin() + self._delta(data.get("delta") or {})
        if kind == "contentBlockStop":
            tool, self._tool = self._tool, None
            return b.function_arguments("{}") if tool is not None and not "".join(tool) else []
        if kind == "messageStop":
            self._stop = data.get("stopReason")
            return []
        if kind == "metadata":
            return self._end(data.get("usage") or {})
        return []  # event types newer than this adapter

    def _delta(self, delta: Json) -> list[StreamEvent]:
        b = self.builder
        if "text" in delta:
            return b.text(delta["text"]) if delta["text"] else []
        if "toolUse" in delta and self._tool is not None:
            chunk = delta["toolUse"].get("input") or ""
            self._tool.append(chunk)
            return b.function_arguments(chunk) if chunk else []
        if reasoning := delta.get("reasoningContent"):
            if reasoning.get("text"):
                return b.reasoning(reasoning["text"])
            if reasoning.get("signature"):
                return b.reasoning_signature(SIGNED + reasoning["signature"])
            if reasoning.get("redactedContent"):
                return b.reasoning_signature(REDACTED + reasoning["redactedContent"])
        return []

    def whole(self, reply: Json) -> list[StreamEvent]:
        """A Converse reply, through the same path as a stream."""
        out = self.begin()
        for block in ((reply.get("output") or {}).get("message") or {}).get("content") or []:
            if "toolUse" in block:
                use = block["toolUse"]
                out += self.builder.function_call(use["toolUseId"], use["name"])
                out += self.builder.function_arguments(orjson.dumps(use.get("input") or {}).decode())
            elif "reasoningContent" in block:
                r = block["reasoningContent"]
                text = r.get("reasoningText") or {}
                out += self._delta({"reasoningContent": {"text": text.get("text")}})
                out += self._delta({"reasoningContent": {"signature": text.get("signature"),
                                                         "redactedContent": r.get("redactedContent")}})  # fmt: skip
            else:
                out += self._delta(block)
        self._stop = reply.get("stopReason")
        return out + self._end(reply.get("usage") or {})

    def _end(self, u: Json) -> list[StreamEvent]:
        if self._stop in _MALFORMED:
            return self.fail(f"The model's output was not valid ({self._stop}).", "server_error")
        read, write = u.get("cacheReadInputTokens") or 0, u.get("cacheWriteInputTokens") or 0
        total = usage(
            (u.get("inputTokens") or 0) + read + write, u.get("outputTokens") or 0, cached=read, cache_write=write
        )
        return self.end(usage=total, incomplete_reason=_INCOMPLETE.get(self._stop or ""))

    def finish(self) -> list[StreamEvent]:
        if self.response is not None:
            return []
        if self._stop is not None:  # messageStop came, the metadata event did not
            return self._end({})
        return self.fail("The upstream closed the stream before the message finished.")


# -- Claude's native Messages body (InvokeModel) -----------------------------------------------


class _ClaudeOnBedrock(anthropic.Anthropic):
    signed, redacted = SIGNED, REDACTED

    def build_request(self, call: Call) -> HttpRequest:
        req = super().build_request(call)
        body = orjson.loads(req.body or b"{}")
        for name in ("model", "stream", "metadata", "service_tier"):  # the URL and the API carry these
            body.pop(name, None)
        body["anthropic_version"] = INVOKE_VERSION
        if beta := req.headers.get("anthropic-beta"):
            body["anthropic_beta"] = beta.split(",")
        action = "invoke-with-response-stream" if call.stream else "invoke"
        return HttpRequest(
            "POST", _url(call.deployment, action), _headers(call), orjson.dumps(body), call.deployment.credentials
        )

    def stream_translator(self, call: Call) -> InvokeTranslator:
        return InvokeTranslator(call)


class InvokeTranslator(anthropic.Translator):
    """InvokeModelWithResponseStream: each `chunk` event carries one Anthropic event, base64."""

    signed, redacted = SIGNED, REDACTED

    def feed(self, frame: Frame) -> list[StreamEvent]:
        if failure := stream_failure(frame):
            return self.fail(*failure)
        if frame.event != "chunk":
            return []
        return self.feed_event(orjson.loads(base64.b64decode(orjson.loads(frame.data)["bytes"])))
