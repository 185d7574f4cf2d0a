"""Gemini generateContent <-> Responses, translated directly.

Request mapping
| Responses                          | Gemini                                                        |
|------------------------------------|---------------------------------------------------------------|
| instructions, system/developer msg | systemInstruction.parts[].text                                |
| message input_text / output_text   | contents[{role: user / model, parts: [{text}]}]               |
| input_image / input_file data: URL | inlineData {mimeType, data} (http URLs fetched: media.py)  |
| input_image / input_file gs:// URI | fileData {mimeType (from the name), fileUri}                |
| function_call                      | model part functionCall {name, args} (+ thoughtSignature)     |
| function_call_output               | user part functionResponse {name, response: {result}}         |
| reasoning (Gemini-signed)          | thoughtSignature on the next model part of its turn, else the text before it |
| tools: function                    | functionDeclarations [{name, description, parametersJsonSchema}] |
| tools: web_search(_preview)        | {googleSearch: {}}                                            |
| tools: computer_use_preview        | {computerUse: {environment}}; actions mapped in gemini_computer.py |
| computer_call / _output            | functionCall / functionResponse with the screenshot as inlineData |
| tool_choice auto/required/none/fn  | functionCallingConfig mode AUTO / ANY / NONE (+ allowedFunctionNames) |
| text.format json_schema / object   | generationConfig.responseMimeType application/json (+ responseJsonSchema) |
| reasoning.effort                   | thinkingLevel low/high (gemini-3), else thinkingBudget (EFFORT_BUDGET) |
| reasoning.summary                  | thinkingConfig.includeThoughts                                |
| max_output_tokens, temperature, top_p | maxOutputTokens, temperature, topP                         |

Output mapping: thought parts -> reasoning summary; a thoughtSignature -> a reasoning item whose
encrypted_content carries it, just before the call it signs or just after the text it signs (a
stream sends a text's signature on a trailing empty part), so it replays; text -> message;
functionCall -> function_call (call_id = its id, or a minted one); groundingMetadata ->
url_citation annotations on the text (byte offsets made character offsets) and, after the
text, a web_search_call with the queries and sources (web_search.py); finishReason MAX_TOKENS ->
incomplete (max_output_tokens), SAFETY and other blocks -> incomplete (content_filter); usage
with cached content and thought tokens.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from dataclasses import replace

import orjson

from .. import errors
from ..streaming.events import StreamEvent
from ..streaming.sse import Frame
from ..transport import HttpRequest
from . import convert, gemini_computer, web_search
from .base import Call, Json, usage
from .support import Support
from .translator import BuilderTranslator

NAME = "gemini"
SIGNED = "gemini:"
EFFORT_BUDGET = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768}
SUPPORT = Support(
    NAME,
    fields=frozenset(
        {
            "tools",
            "tool_choice",
            "text",
            "reasoning",
            "max_output_tokens",
            "temperature",
            "top_p",
            "include",
            "truncation",
        }
    ),
    tools=frozenset({"function", "web_search", "web_search_preview", "computer_use_preview"}),
    includes=frozenset({"reasoning.encrypted_content", "web_search_call.action.sources"}),
)
_COMPLETED = {"STOP", "FINISH_REASON_UNSPECIFIED", None}
_STATUS = {"RESOURCE_EXHAUSTED": 429, "UNAVAILABLE": 503, "NOT_FOUND": 404, "PERMISSION_DENIED": 403,
           "UNAUTHENTICATED": 401, "INVALID_ARGUMENT": 400, "INTERNAL": 500, "DEADLINE_EXCEEDED": 504}  # fmt: skip


class Gemini:
    support = SUPPORT

    def build_request(self, call: Call) -> HttpRequest:
        p = call.params
        system, contents = _contents(convert.conversation(call), display(p))
        if p.get("instructions"):
            system.insert(0, convert.text_of(p["instructions"]))
        body: Json = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
        config: Json = {}
        for src, dst in (("max_output_tokens", "maxOutputTokens"), ("temperature", "temperature"), ("top_p", "topP")):
            if p.get(src) is not None:
                config[dst] = p[src]
        if fmt := convert.json_format(p):
            config["responseMimeType"] = "application/json"
            if fmt["type"] == "json_schema" and fmt.get("schema"):
                config["responseJsonSchema"] = fmt["schema"]
        if thinking := _thinking(call.deployment.model, p.get("reasoning") or {}):
            config["thinkingConfig"] = thinking
        if config:
            body["generationConfig"] = config
        _tools(p, body)
        body.update(call.extra_body)
        headers = {"content-type": "application/json", **call.deployment.auth_headers(), **call.extra_headers}
        action = "streamGenerateContent?alt=sse" if call.stream else "generateContent"
        url = f"{call.deployment.api_base}/models/{call.deployment.model}:{action}"
        return HttpRequest("POST", url, headers, orjson.dumps(body), call.deployment.credentials)

    def count_request(self, call: Call) -> HttpRequest:
        req = self.build_request(call)
        body = orjson.loads(req.body or b"{}")
        body.pop("generationConfig", None)  # countTokens refuses generation settings
        dep = call.deployment
        url = f"{dep.api_base}/models/{dep.model}:countTokens"
        return replace(req, url=url, body=orjson.dumps(self.count_body(dep.model, body)))

    def count_body(self, model: str, body: Json) -> Json:
        return {"generateContentRequest": {"model": f"models/{model}", **body}}

    def parse_count(self, body: bytes) -> int:
        return int(orjson.loads(body).get("totalTokens") or 0)

    def parse_response(self, body: bytes, call: Call) -> tuple[Json, None]:
        t = Translator(call)
        t.chunk(orjson.loads(body))
        t.done()
        assert t.response is not None
        return t.response, None

    def stream_translator(self, call: Call) -> Translator:
        return Translator(call)

    def parse_error(self, status: int, body: bytes, headers: Mapping[str, str]) -> errors.APIStatusError:
        return error_from(status, body, headers)


def error_from(status: int, body: bytes, headers: Mapping[str, str]) -> errors.APIStatusError:
    err, message = convert.error_payload(status, body)
    code = err.get("status")
    if "API key not valid" in message:
        status = 401  # Google says 400; every OpenAI client expects an authentication error
    keep = errors.passthrough_headers(headers)
    if too_long := convert.overflow_error(status, message, headers=keep):
        return too_long
    if code == "RESOURCE_EXHAUSTED" and "retry-after" not in keep:
        for detail in err.get("details") or []:
            if str(detail.get("retryDelay", "")).endswith("s"):
                keep["retry-after"] = detail["retryDelay"][:-1]
    return errors.status_error(status, message, code=code.lower() if code else None, headers=keep)


# -- request -----------------------------------------------------------------------------------


def display(p: Json) -> tuple[int, int] | None:
    """The display size a computer_use_preview tool declared, if one is offered."""
    for tool in p.get("tools") or []:
        if tool.get("type") == "computer_use_preview":
            return int(tool.get("display_width") or 1024), int(tool.get("display_height") or 768)
    return None


def _contents(history: list[Json], size: tuple[int, int] | None = None) -> tuple[list[str], list[Json]]:
    system: list[str] = []
    clicks: dict[str, list[Json]] = {}  # the click half of a type_text_at, waiting for its type half
    contents: list[Json] = []
    names: dict[str, str] = {}  # call_id -> function name, for functionResponse
    signature: str | None = None  # a thoughtSignature waiting for the model part it signs

    def settle() -> None:
        # A signature no model part followed (in its turn) signed the text just before it.
        nonlocal signature
        if signature and contents and contents[-1]["role"] == "model":
            contents[-1]["parts"][-1].setdefault("thoughtSignature", signature)
        signature = None

    def push(role: str, part: Json) -> None:
        nonlocal signature
        if role == "model" and signature:
            part["thoughtSignature"], signature = signature, None
        elif role == "user":
            settle()
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].append(part)
        else:
            contents.append({"role": role, "parts": [part]})

    for item in history:
        kind = item.get("type") or "message"
        if kind == "message":
            role = item.get("role", "user")
            if role in ("system", "developer"):
                system.append("".join(p.get("text", "") for p in convert.parts(item)))
                continue
            for part in convert.parts(item):
                push("model" if role == "assistant" else "user", _part(part))
        elif kind == "function_call":
            names[item["call_id"]] = convert.tool_name(item)
            call = {"name": convert.tool_name(item), "args": convert.arguments(item.get("arguments"), NAME)}
            push("model", {"functionCall": _with_id(call, item["call_id"])})
        elif kind == "function_call_output":
            name = names.get(item["call_id"], item.get("name") or item["call_id"])
            response = {"name": name, "response": {"result": convert.text_of(item.get("output"))}}
            push("user", {"functionResponse": _with_id(response, item["call_id"])})
        elif kind in ("computer_call", "computer_call_output"):
            parsed = gemini_computer.parse_call_id(item.get("call_id", ""))
            if parsed is None or size is None:
                raise convert.unsupported_input(f"{kind} not made by Gemini's computer tool", NAME)
            name, gid, step = parsed
            if kind == "computer_call" and step == "click":
                clicks[gid] = [item.get("action") or {}]
            elif kind == "computer_call":
                args = gemini_computer.to_gemini_args(name, [*clicks.pop(gid, []), item.get("action") or {}], size)
                push("model", {"functionCall": _with_id({"name": name, "args": args}, gid)})
            elif step != "click":  # a type_text_at is answered once, by its second half
                push("user", {"functionResponse": _with_id(_screen_response(name, item), gid)})
        elif kind == "reasoning":
            sig = item.get("encrypted_content") or ""
            if not sig.startswith(SIGNED):
                continue  # another provider's reasoning state
            settle()
            signature = sig.removeprefix(SIGNED)  # for the model part after it, else the one before
        elif kind == "web_search_call":
            continue
        else:
            raise convert.unsupported_input(kind, NAME)
    settle()
    return system, contents


def _screen_response(name: str, item: Json) -> Json:
    response: Json = {"url": item.get("current_url") or ""}
    if item.get("acknowledged_safety_checks"):
        response["safety_acknowledgement"] = "true"
    out: Json = {"name": name, "response": response}
    shot = (item.get("output") or {}).get("image_url") or ""
    if decoded := convert.data_url(shot):
        out["parts"] = [{"inlineData": {"mimeType": decoded[0], "data": decoded[1]}}]
    return out


def _with_id(part: Json, call_id: str) -> Json:
    # Gemini 3 ids its calls; ids llmrelay minted ("call_...") mean nothing to Gemini.
    return part if call_id.startswith("call_") else {**part, "id": call_id}


def _part(part: Json) -> Json:
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        return {"text": part.get("text", "")}
    if kind == "refusal":
        return {"text": part.get("refusal", "")}
    url = part.get("image_url") if kind == "input_image" else part.get("file_data") or part.get("file_url")
    if kind in ("input_image", "input_file") and url:
        if decoded := convert.data_url(url):
            return {"inlineData": {"mimeType": decoded[0], "data": decoded[1]}}
        # gs:// (and File API) URIs; http(s) URLs were fetched and inlined (media.py)
        mime = mimetypes.guess_type(url)[0] or ("image/jpeg" if kind == "input_image" else "application/pdf")
        return {"fileData": {"mimeType": mime, "fileUri": url}}
    raise convert.unsupported_input(f"content part '{kind}'", NAME)


def _thinking(model: str, reasoning: Json) -> Json:
    effort, summary = reasoning.get("effort"), reasoning.get("summary")
    config: Json = {}
    if effort is not None:
        if model.startswith("gemini-3"):
            config["thinkingLevel"] = "low" if effort in ("none", "minimal", "low") else "high"
        else:
            config["thinkingBudget"] = EFFORT_BUDGET.get(effort, EFFORT_BUDGET["medium"])
    if summary is not None and effort != "none":
        config["includeThoughts"] = True
    return config


def _tools(p: Json, body: Json) -> None:
    declarations, tools = [], []
    for tool in p.get("tools") or []:
        if tool["type"] == "function":
            decl = {"name": tool["name"], "parametersJsonSchema": tool.get("parameters") or {"type": "object"}}
            if tool.get("description"):
                decl["description"] = tool["description"]
            declarations.append(decl)
        elif tool["type"] == "computer_use_preview":
            tools.append(gemini_computer.tool(tool))
        else:
            tools.append({"googleSearch": {}})
    if declarations:
        tools.insert(0, {"functionDeclarations": declarations})
    if tools:
        body["tools"] = tools
    choice = p.get("tool_choice")
    if declarations and choice is not None:
        if isinstance(choice, dict) and choice.get("type") == "function":
            fcc = {"mode": "ANY", "allowedFunctionNames": [choice["name"]]}
        else:
            fcc = {"mode": {"auto": "AUTO", "required": "ANY", "none": "NONE"}.get(choice, "AUTO")}
        body["toolConfig"] = {"functionCallingConfig": fcc}


# -- response and stream -----------------------------------------------------------------------


class Translator(BuilderTranslator):
    """GenerateContentResponse chunks (a whole response is one chunk) -> Responses events."""

    def __init__(self, call: Call) -> None:
        super().__init__(call)
        self._new_id = call.new_id
        self._usage: Json = {}
        self._finish: str | None = None
        self._blocked = False
        self._display = display(call.params)
        # With Google Search on, a text's signature waits until the grounding is placed on the text.
        self._grounded = any(t.get("type") in web_search.TOOL_TYPES for t in call.params.get("tools") or [])
        self._grounding: Json | None = None
        self._text_signature: str | None = None

    def feed(self, frame: Frame) -> list[StreamEvent]:
        chunk = orjson.loads(frame.data)
        if isinstance(chunk.get("error"), dict):
            return self.fail(chunk["error"].get("message") or "The upstream stream failed.")
        return self.chunk(chunk)

    def chunk(self, chunk: Json) -> list[StreamEvent]:
        b = self.builder
        out = self.begin()
        self._usage = chunk.get("usageMetadata") or self._usage
        if (chunk.get("promptFeedback") or {}).get("blockReason"):
            self._blocked = True
        for candidate in (chunk.get("candidates") or [])[:1]:
            for part in (candidate.get("content") or {}).get("parts") or []:
                # A signed call gets its reasoning item just before it; signed text just after
                # (streams send that signature on a trailing empty part), so both paths agree.
                sig = part.get("thoughtSignature")
                if self._text_signature and (part.get("functionCall") or part.get("thought")):
                    out += b.reasoning_signature(SIGNED + self._text_signature)
                    self._text_signature = None
                if fc := part.get("functionCall"):
                    if sig:
                        out += b.reasoning_signature(SIGNED + sig)
                    if self._display and fc.get("name") in gemini_computer.FUNCTIONS:
                        gid = fc.get("id") or self._new_id("call")
                        for item in gemini_computer.to_openai(fc["name"], fc.get("args") or {}, gid, self._display):
                            out += b.item(item)
                        continue
                    out += b.function_call(fc.get("id") or self._new_id("call"), fc.get("name", ""))
                    out += b.function_arguments(orjson.dumps(fc.get("args") or {}).decode())
                    continue
                if part.get("thought"):
                    out += b.reasoning(part.get("text") or "")
                elif part.get("text"):
                    out += b.text(part["text"])
                if sig and self._grounded and not part.get("thought"):
                    self._text_signature = sig
                elif sig:
                    out += b.reasoning_signature(SIGNED + sig)
            self._grounding = candidate.get("groundingMetadata") or self._grounding
            self._finish = candidate.get("finishReason") or self._finish
        return out

    def done(self) -> list[StreamEvent]:
        reason = None
        if self._blocked or self._finish not in _COMPLETED | {"MAX_TOKENS"}:
            reason = "content_filter"
        elif self._finish == "MAX_TOKENS":
            reason = "max_output_tokens"
        return self._grounded_on() + self.end(usage=self._usage_out(), incomplete_reason=reason)

    def _grounded_on(self) -> list[StreamEvent]:
        """The search's citations on the answer text, then the web_search_call (and a text
        signature held back for them); Gemini sends its groundingMetadata with the last chunk."""
        out: list[StreamEvent] = []
        if self._grounding and self.response is None:
            action, annotations = web_search.gemini_grounding(self._grounding, self.builder.open_text())
            for annotation in annotations:
                out += self.builder.annotation(annotation)
            if action is not None:
                out += self.builder.web_search(action)
        if self._text_signature and self.response is None:
            out += self.builder.reasoning_signature(SIGNED + self._text_signature)
        self._grounding = self._text_signature = None
        return out

    def finish(self) -> list[StreamEvent]:
        if self.response is not None:
            return []
        if self._finish is not None or self._blocked:
            return self.done()
        return self.fail("The upstream closed the stream before the response finished.")

    def _usage_out(self) -> Json:
        u = self._usage
        thoughts = u.get("thoughtsTokenCount") or 0
        output = (u.get("candidatesTokenCount") or 0) + thoughts
        return usage(u.get("promptTokenCount") or 0, output, cached=u.get("cachedContentTokenCount") or 0,
                     reasoning=thoughts)  # fmt: skip
