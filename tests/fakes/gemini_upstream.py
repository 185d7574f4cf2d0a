"""Fake Gemini API upstream: a real HTTP server speaking generativelanguage.googleapis.com's REST wire format.

Run with ``python -m tests.fakes.gemini_upstream --port N``. ``/v1beta`` and ``/v1`` answer alike to
``POST .../models/{model}:generateContent``, ``:streamGenerateContent`` (``?alt=sse``: SSE, else a streamed JSON
array) and ``:countTokens``. Keys come in ``x-goog-api-key`` or ``?key=``: none -> 403, ``bad-key`` -> 400.

The "model" is deterministic: ``Echo (turns=N): <last user text>``, N counting the user turns that hold text;
a ``functionCall`` of the first declared function (``{"q": <last user text>}``) until the last user turn holds a
``functionResponse``, then ``Echo (turns=N): tool said <response>``; with ``computerUse``, one browser action per
step (``open_web_browser``, ``click_at``, ``type_text_at``), then the echo. Thinking models (``gemini-2.5*``,
``gemini-3*``, unless ``thinkingBudget: 0``) spend THOUGHT_TOKENS out of ``maxOutputTokens`` and sign their first
call; Gemini 3 also signs its text, ids its calls and refuses a replayed call that lost its signature.

A reply script posted to ``/_fake/enqueue`` (a dict or a list of dicts) is consumed, FIFO, by the next
generateContent or streamGenerateContent:

- ``{"status": 429, "headers": {...}, "body": {...} | "text"}``: that error (Google's own body when omitted)
- ``{"headers": {...}}``: extra headers on a normal reply; ``{"delay": 0.2}``: wait before answering
- ``{"delta_delay": 0.3}``: sleep before each streamed chunk
- ``{"fail_after_events": 3}``: 3 chunks, then ``data: {"error": {... "INTERNAL"}}`` (non-streaming: a 500)
- ``{"drop_after_events": 3}``: 3 chunks, then cut the connection (non-streaming: half the body, then cut)
- ``{"text": "..."}``: the reply text instead of the echo; ``{"cached_tokens": N}``: N prompt tokens from cache
With ``googleSearch`` the answer is grounded: the echo, then " — café ☕. Two sources agree.", with a
``groundingMetadata`` (the search query, two web chunks, a support per sentence in UTF-8 byte offsets) on the
candidate, and on the last chunk of a stream.

- ``{"finish_reason": "SAFETY"}``: a candidate without content; ``{"block_reason": "SAFETY"}``: no candidate,
  only ``promptFeedback``; ``{"safety_decision": true}``: the computer-use call asks for confirmation
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import re
import secrets
import string
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.control import Control, DropConnection, TruncatedResponse, serve

Json = dict[str, Any]

BASE_PATH = "/v1beta"
BAD_KEY = "bad-key"
THOUGHT_TOKENS = 24
MEDIA_TOKENS = 258  # what Gemini bills per image
CHUNK = re.compile(r"\S+\s*|\s+")  # word-sized pieces whose concatenation is the text
API_PATH = re.compile(r"/(v1beta|v1)/models/([^/:]+):([A-Za-z]+)")
GENERATE = ("generateContent", "streamGenerateContent")
COMPUTER_ACTIONS = ("open_web_browser", "click_at", "type_text_at")
# Documented placeholders that Gemini 3 accepts instead of a real signature.
DUMMY_SIGNATURES = {"skip_thought_signature_validator", "context_engineering_is_the_way_to_go"}
JSON_TYPE = "application/json; charset=UTF-8"
RPC = "type.googleapis.com/google.rpc."
REDIRECT = "https://vertexaisearch.cloud.google.com/grounding-api-redirect/"
HEADERS = {"vary": "Origin, X-Origin, Referer", "server": "scaffolding on HTTPServer2", "x-xss-protection": "0"}
HEADERS |= {"x-frame-options": "SAMEORIGIN", "x-content-type-options": "nosniff"}
STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND"}
STATUS |= {409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
INTERNAL = "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"
MESSAGES = {
    400: "Request contains an invalid argument.",
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    429: "You exceeded your current quota, please check your plan and billing details. For more information on"
    " this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
    500: INTERNAL,
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}
UNREGISTERED = (
    "Method doesn't allow unregistered callers (callers without established identity)."
    " Please use API Key or other form of API consumer identity to call this API."
)
INVALID_KEY = "API key not valid. Please pass a valid API key."
UNKNOWN_MODEL = (
    "models/{model} is not found for API version {version}, or is not supported for {method}. Call ListModels to"
    " see the list of available models and their supported methods."
)
MISSING_SIGNATURE = (
    "Function call is missing a thought_signature in functionCall parts. This is required for tools to work"
    " correctly, and missing thought_signature may lead to degraded model performance. Additional data, function"
    " call `default_api:{name}` , position {position}. Please refer to"
    " https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
)
RESPONSE_AFTER_CALL = "Please ensure that function response turn comes immediately after a function call turn."
CALL_AFTER_USER = (
    "Please ensure that function call turn comes immediately after a user turn or after a function response turn."
)
RESPONSE_COUNT = (
    "Please ensure that the number of function response parts is equal to the number of function call parts of"
    " the function call turn."
)
# The request messages: proto JSON takes lowerCamelCase or snake_case names, and answers "Cannot find field"
# to anything else. ``name:kind`` recurses into a nested message (``[]``: repeated); free-form values stay as sent.
MESSAGE_FIELDS = {
    "request": "contents:content[] systemInstruction:content generationConfig:config tools:tool[]"
    " toolConfig:toolConfig model safetySettings cachedContent serviceTier store",
    "content": "role parts:part[]",
    "part": "text inlineData:blob fileData functionCall:call functionResponse:response executableCode"
    " codeExecutionResult toolCall toolResponse thought thoughtSignature videoMetadata partMetadata mediaResolution",
    "blob": "mimeType data",
    "call": "id name args",
    "response": "id name response parts willContinue scheduling",
    "config": "stopSequences responseMimeType responseSchema responseJsonSchema responseModalities candidateCount"
    " maxOutputTokens temperature topP topK seed presencePenalty frequencyPenalty responseLogprobs logprobs"
    " enableEnhancedCivicAnswers speechConfig thinkingConfig:thinking imageConfig mediaResolution",
    "thinking": "includeThoughts thinkingBudget thinkingLevel",
    "tool": "functionDeclarations:declaration[] googleSearch googleSearchRetrieval codeExecution computerUse"
    " urlContext fileSearch googleMaps mcpServers",
    "declaration": "name description behavior parameters parametersJsonSchema response responseJsonSchema",
    "toolConfig": "functionCallingConfig:calling retrievalConfig includeServerSideToolInvocations",
    "calling": "mode allowedFunctionNames",
}
SCHEMA = {
    kind: {name: sub or None for name, _, sub in (token.partition(":") for token in spec.split())}
    for kind, spec in MESSAGE_FIELDS.items()
}
RATINGS = [{"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"}]
RATINGS += [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]
NOT_DATA = {"thought", "thoughtSignature", "videoMetadata", "partMetadata", "mediaResolution"}


class ApiError(Exception):
    """An error in Google's ``{"error": {"code", "message", "status", "details"?}}`` shape."""

    def __init__(self, code: int, message: str | None = None, details: list[Json] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message or MESSAGES.get(code, "Scripted error."), details

    def body(self) -> Json:
        error: Json = {"code": self.code, "message": self.message, "status": STATUS.get(self.code, "UNKNOWN")}
        return {"error": error | ({"details": self.details} if self.details else {})}


def bad_field(message: str, field: str) -> ApiError:
    violation = {"field": field, "description": message} if field else {"description": message}
    return ApiError(400, message, [{"@type": RPC + "BadRequest", "fieldViolations": [violation]}])


def pretty(payload: Any) -> bytes:
    # Google pretty-prints JSON bodies (two spaces, trailing newline) and leaves UTF-8 unescaped.
    return (json.dumps(payload, indent=2, ensure_ascii=False) + "\n").encode()


def sse_frame(payload: Json) -> bytes:
    # A streamed chunk is one line, spaced as ``{"a": 1,"b": 2}``, and events end with CRLF CRLF.
    return b"data: " + json.dumps(payload, separators=(",", ": "), ensure_ascii=False).encode() + b"\r\n\r\n"


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(pretty(payload), status_code=status, media_type=JSON_TYPE)


def html_404(path: str) -> Response:
    # Unknown URLs get the front end's HTML page, not a JSON error.
    page = (
        "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error 404 (Not Found)!!1</title>\n"
        f"  <p><b>404.</b> <ins>That\N{RIGHT SINGLE QUOTATION MARK}s an error.</ins>\n  <p>The requested URL"
        f" <code>{path}</code> was not found on this server.\n"
    )
    return Response(page, status_code=404, media_type="text/html; charset=UTF-8")


def signature() -> str:
    return base64.b64encode(b"\x12\x24" + secrets.token_bytes(34)).decode()


def snake(path: str) -> str:
    return re.sub(r"[A-Z]", lambda m: "_" + m.group(0).lower(), path)


# --- request ---------------------------------------------------------------------------------------------------


def walk(obj: Any, kind: str, path: str) -> Json:
    """``obj`` as message ``kind`` with camelCase keys, refused where Google refuses it."""
    where = snake(path)
    if not isinstance(obj, dict):
        raise bad_field(f"Invalid value at '{where}': expected an object.", where)
    out: Json = {}
    for key, value in obj.items():
        name = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), key)
        if name not in SCHEMA[kind]:
            at = f" at '{where}'" if where else ""
            raise bad_field(f'Invalid JSON payload received. Unknown name "{key}"{at}: Cannot find field.', where)
        sub, inner = SCHEMA[kind][name], f"{path}.{name}" if path else name
        if sub and sub.endswith("[]"):
            value = [walk(item, sub[:-2], f"{inner}[{i}]") for i, item in enumerate(value or [])]
        elif sub:
            value = walk(value, sub, inner)
        out[name] = value
    if kind == "content":
        out |= {"role": out.get("role") or "user", "parts": out.get("parts") or []}
    if kind == "part" and not out.keys() - NOT_DATA:
        message = f"* GenerateContentRequest.{where}.data: required oneof field 'data' must have one initialized field"
        raise ApiError(400, message + "\n")
    for field, value in ((f, out.get(f)) for f in ("thoughtSignature", "data") if kind in ("part", "blob")):
        if value is not None and value not in DUMMY_SIGNATURES:
            try:
                # Proto JSON takes either base64 alphabet, padded or not.
                text = str(value).replace("-", "+").replace("_", "/")
                base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
            except (binascii.Error, ValueError):
                at = snake(f"{path}.{field}")
                message = f"Invalid value at '{at}' (TYPE_BYTES), Base64 decoding failed for \"{value}\""
                raise bad_field(message, at) from None
    return out


def parse_request(raw: Any) -> Json:
    body = walk(raw, "request", "")
    body.setdefault("contents", [])
    body.setdefault("tools", [])
    config = body["generationConfig"] = body.get("generationConfig") or {}
    config["thinkingConfig"] = config.get("thinkingConfig") or {}
    tool_config = body["toolConfig"] = body.get("toolConfig") or {}
    tool_config["functionCallingConfig"] = tool_config.get("functionCallingConfig") or {}
    return body


def calls_of(content: Json) -> list[Json]:
    return [p for p in content["parts"] if "functionCall" in p] if content["role"] == "model" else []


def responses_of(content: Json) -> list[Json]:
    return [p["functionResponse"] for p in content["parts"] if "functionResponse" in p and content["role"] == "user"]


def texts_of(content: Json) -> list[str]:
    return [str(p["text"]) for p in content["parts"] if "text" in p and not p.get("thought")]


def check_turns(contents: list[Json], model: str) -> None:
    """The ordering rules Google enforces around function calls, and Gemini 3's signature rule."""
    if not contents:
        raise ApiError(400, "* GenerateContentRequest.contents: contents is not specified\n")
    for index, content in enumerate(contents):
        if content["role"] not in ("user", "model"):  # systemInstruction's role goes unchecked
            raise ApiError(400, "Please use a valid role: user, model.")
        previous = contents[index - 1] if index else {"role": "none", "parts": []}
        if responses_of(content) and not calls_of(previous):
            raise ApiError(400, RESPONSE_AFTER_CALL)
        if responses_of(content) and len(responses_of(content)) != len(calls_of(previous)):
            raise ApiError(400, RESPONSE_COUNT)
        if calls_of(content) and previous["role"] != "user":
            raise ApiError(400, CALL_AFTER_USER)
    # The current turn starts at the last user content that is not only function responses.
    start = max((i for i, c in enumerate(contents) if c["role"] == "user" and not responses_of(c)), default=0)
    for index in range(start, len(contents)):
        calls = calls_of(contents[index])
        if model.startswith("gemini-3") and calls and "thoughtSignature" not in calls[0]:
            name = calls[0]["functionCall"].get("name", "")
            raise ApiError(400, MISSING_SIGNATURE.format(name=name, position=index + 1))


def prompt_tokens(body: Json) -> tuple[int, int]:
    """(text, media) tokens: one per whitespace-separated word, MEDIA_TOKENS per inline or file part."""
    text = media = 0
    for content in body["contents"] + ([body["systemInstruction"]] if body.get("systemInstruction") else []):
        for part in content["parts"]:
            media += MEDIA_TOKENS if "inlineData" in part or "fileData" in part else 0
            text += sum(len(json.dumps(part[k]).split()) for k in ("functionCall", "functionResponse") if k in part)
            text += len(str(part.get("text", "")).split())
    return text, media


def output_tokens(parts: list[Json]) -> int:
    calls = sum(len(json.dumps(p["functionCall"]).split()) for p in parts if "functionCall" in p)
    return calls + sum(len(str(p.get("text", "")).split()) for p in parts if not p.get("thought"))


# --- the model -------------------------------------------------------------------------------------------------


def thought_tokens(body: Json, model: str) -> int:
    budget = body["generationConfig"]["thinkingConfig"].get("thinkingBudget")
    if budget == 0 and model.startswith(("gemini-2.5-pro", "gemini-3")):
        raise ApiError(400, "Budget 0 is invalid. This model only works in thinking mode.")
    if budget == 0 or not model.startswith(("gemini-2.5", "gemini-3")):
        return 0
    return min(budget, THOUGHT_TOKENS) if isinstance(budget, int) and budget > 0 else THOUGHT_TOKENS


def said_by_tool(response: Json) -> str:
    payload = response.get("response")
    values = list(payload.values()) if isinstance(payload, dict) else []
    return values[0] if len(values) == 1 and isinstance(values[0], str) else json.dumps(payload, separators=(",", ":"))


def json_text(config: Json, said: str, turns: int) -> str:
    schema = config.get("responseJsonSchema") or config.get("responseSchema") or {}
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not properties:
        return json.dumps({"echo": said, "turns": turns})
    typed = {"integer": turns, "number": turns, "boolean": True, "array": [], "object": {}}
    return json.dumps({name: typed.get(str(spec.get("type", "")).lower(), said) for name, spec in properties.items()})


def computer_call(tool: Json, contents: list[Json], said: str, script: Json) -> Json | None:
    """The next browser action of the scripted session, or None once it is over."""
    start = max((i for i, c in enumerate(contents) if c["role"] == "user" and texts_of(c)), default=0)
    done = sum(p["functionCall"].get("name") in COMPUTER_ACTIONS for c in contents[start:] for p in calls_of(c))
    steps = [a for a in COMPUTER_ACTIONS if a not in (tool.get("excludedPredefinedFunctions") or [])]
    if done >= len(steps):
        return None
    args: Json = {} if steps[done] == "open_web_browser" else {"x": 500, "y": 300}
    if steps[done] == "type_text_at":
        args |= {"text": said, "press_enter": True}
    if script.get("safety_decision"):
        explanation = "The page may contain instructions the user did not write. Confirm before continuing."
        args["safety_decision"] = {"decision": "require_confirmation", "explanation": explanation}
    return {"name": steps[done], "args": args}


def respond(body: Json, model: str, script: Json) -> Json:
    """The whole GenerateContentResponse for ``body``; the stream is cut from it."""
    contents, config = body["contents"], body["generationConfig"]
    check_turns(contents, model)
    thoughts, gemini3 = thought_tokens(body, model), model.startswith("gemini-3")
    users = [c for c in contents if c["role"] == "user" and texts_of(c)]
    turns, said = len(users), " ".join(texts_of(users[-1])) if users else ""
    tool_said = [said_by_tool(r) for r in responses_of(contents[-1])]
    heard = f"tool said {', '.join(tool_said)}" if tool_said else said
    calling = body["toolConfig"]["functionCallingConfig"]
    mode = str(calling.get("mode", "AUTO")).upper()
    functions = [d for t in body["tools"] for d in t.get("functionDeclarations") or []]
    searching = any(t.get("googleSearch") is not None for t in body["tools"])
    computer = next((t["computerUse"] for t in body["tools"] if t.get("computerUse") is not None), None)

    parts: list[Json] = []
    if thoughts and config["thinkingConfig"].get("includeThoughts"):
        parts.append({"text": f"**Echoing the user**\n\nThe user said: {heard}\n\n", "thought": True})
    finish, call = "STOP", None
    if computer is not None and mode != "NONE":
        call = computer_call(computer, contents, said, script)
        if call is not None:  # the computer-use model says what it is about to do
            parts.append({"text": f"I will {call['name'].replace('_', ' ')}."})
    elif functions and mode != "NONE" and (mode == "ANY" or not tool_said):
        call = {"name": (calling.get("allowedFunctionNames") or [functions[0].get("name", "")])[0], "args": {"q": said}}
    if call is not None:
        if gemini3:
            call["id"] = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
        parts.append({"functionCall": call} | ({"thoughtSignature": signature()} if thoughts else {}))
    else:
        text = script.get("text") or f"Echo (turns={turns}): {heard}"
        if config.get("responseMimeType") == "application/json" and "text" not in script:
            text = json_text(config, heard, turns)
        for stop in config.get("stopSequences") or []:
            text = text.split(stop)[0] if stop else text
        limit = config.get("maxOutputTokens")
        thoughts = min(thoughts, limit) if isinstance(limit, int) else thoughts
        if isinstance(limit, int) and limit - thoughts < len(text.split()):
            # Thoughts are paid from the same budget: a small limit can leave no visible text at all.
            text, finish = "".join(CHUNK.findall(text)[: max(limit - thoughts, 0)]).rstrip(), "MAX_TOKENS"
        if searching and "text" not in script and finish == "STOP":
            text += " — café ☕. Two sources agree."
        if text:
            parts.append({"text": text} | ({"thoughtSignature": signature()} if gemini3 and thoughts else {}))

    text_tokens, media_tokens = prompt_tokens(body)
    prompt, output = text_tokens + media_tokens, output_tokens(parts)
    cached = min(int(script.get("cached_tokens") or 0), prompt)
    if script.get("finish_reason") not in (None, "STOP", "MAX_TOKENS") or script.get("block_reason"):
        parts, output = [], 0
    details = [{"modality": m, "tokenCount": n} for m, n in (("TEXT", text_tokens), ("IMAGE", media_tokens)) if n]
    usage = {"promptTokenCount": prompt, "candidatesTokenCount": output, "totalTokenCount": prompt + output + thoughts}
    usage |= {"cachedContentTokenCount": cached, "promptTokensDetails": details}
    usage |= {"cacheTokensDetails": [{"modality": "TEXT", "tokenCount": cached}] if cached else []}
    usage["thoughtsTokenCount"] = thoughts
    reply: Json = {}
    if script.get("block_reason"):
        reply["promptFeedback"] = {"blockReason": script["block_reason"], "safetyRatings": RATINGS}
        usage |= {"totalTokenCount": prompt, "thoughtsTokenCount": 0}
    else:
        candidate: Json = {"content": {"parts": parts, "role": "model"} if parts else {"role": "model"}}
        candidate["finishReason"] = script.get("finish_reason") or finish
        if searching and call is None and candidate["finishReason"] == "STOP" and parts:
            text = "".join(p.get("text", "") for p in parts if not p.get("thought"))
            candidate["groundingMetadata"] = grounding(said, text)
        if candidate["finishReason"] not in ("STOP", "MAX_TOKENS"):
            candidate = {"finishReason": candidate["finishReason"]}
            candidate |= {"safetyRatings": RATINGS} if candidate["finishReason"] == "SAFETY" else {}
        reply["candidates"] = [candidate | {"index": 0}]
    # Proto3 JSON leaves zero counts and empty lists out.
    reply["usageMetadata"] = {k: v for k, v in usage.items() if v}
    return reply | {"modelVersion": model, "responseId": secrets.token_urlsafe(17)[:23]}


def grounding(query: str, text: str) -> Json:
    """Google Search grounding for ``text``: a support per sentence, its segment in UTF-8 bytes."""
    # Google's redirect links are opaque; these are stable per query, so a stream and a whole reply agree.
    chunks = [{"web": {"uri": REDIRECT + hashlib.sha256(f"{domain} {query}".encode()).hexdigest()[:32],
                       "title": domain}} for domain in ("example.com", "wikipedia.org")]  # fmt: skip
    supports, start = [], 0
    for n, sentence in enumerate(re.findall(r"[^.]+\.?\s*", text)):
        sentence_bytes = len(sentence.rstrip().encode())
        segment = {"startIndex": start, "endIndex": start + sentence_bytes, "text": sentence.rstrip()}
        segment = {k: v for k, v in segment.items() if v}  # proto3 JSON leaves a zero startIndex out
        supports.append({"segment": segment, "groundingChunkIndices": [0] if n == 0 else [0, 1]})
        start += len(sentence.encode())
    entry = {"renderedContent": '<style>.container{}</style><div class="container">' + query + "</div>"}
    return {"webSearchQueries": [query], "searchEntryPoint": entry, "groundingChunks": chunks,
            "groundingSupports": supports}  # fmt: skip


def stream_chunks(reply: Json) -> list[Json]:
    """The chunks Google streams for ``reply``: thoughts, then the text word by word, then the calls.

    Every chunk repeats ``usageMetadata`` (output counted so far), ``modelVersion`` and ``responseId``;
    ``finishReason`` rides on the last one, and a Gemini 3 text signature comes in a final empty text part.
    """
    candidate = (reply.get("candidates") or [{}])[0]
    if not candidate.get("content", {}).get("parts"):
        return [reply]
    pieces: list[list[Json]] = []
    for part in candidate["content"]["parts"]:
        if "text" in part and not part.get("thought"):
            pieces += [[{"text": piece}] for piece in CHUNK.findall(str(part["text"]))]
            if "thoughtSignature" in part:
                pieces.append([{"text": "", "thoughtSignature": part["thoughtSignature"]}])
        elif "functionCall" in part and pieces and "functionCall" in pieces[-1][-1]:
            pieces[-1].append(part)  # parallel calls travel together
        else:
            pieces.append([part])
    usage, so_far, chunks = reply["usageMetadata"], 0, []
    for index, parts in enumerate(pieces, start=1):
        so_far += output_tokens(parts)
        total = usage["promptTokenCount"] + so_far + usage.get("thoughtsTokenCount", 0)
        partial = {k: v for k, v in (usage | {"candidatesTokenCount": so_far, "totalTokenCount": total}).items() if v}
        body: Json = {"content": {"parts": parts, "role": "model"}}
        body |= {"finishReason": candidate["finishReason"]} if index == len(pieces) else {}
        if index == len(pieces) and candidate.get("groundingMetadata"):
            body["groundingMetadata"] = candidate["groundingMetadata"]
        chunk = {"candidates": [body | {"index": 0}], "usageMetadata": partial if index < len(pieces) else usage}
        chunks.append(chunk | {"modelVersion": reply["modelVersion"], "responseId": reply["responseId"]})
    return chunks


# --- the server ------------------------------------------------------------------------------------------------


def default_error(code: int, script: Json) -> Json:
    details = None
    if code == 429:
        metric = "generativelanguage.googleapis.com/generate_content_free_tier_requests"
        link = {"description": "Learn more about Gemini API quotas", "url": MESSAGES[429].split()[-1][:-1]}
        details = [
            {"@type": RPC + "QuotaFailure", "violations": [{"quotaMetric": metric}]},
            {"@type": RPC + "Help", "links": [link]},
            {"@type": RPC + "RetryInfo", "retryDelay": script.get("retry_delay", "1s")},
        ]
    return ApiError(code, details=details).body()


def build_app() -> Starlette:
    control = Control("gemini", BASE_PATH)

    def check_auth(request: Request) -> None:
        key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
        if not key:
            raise ApiError(403, UNREGISTERED)
        if key == BAD_KEY:
            info = {"@type": RPC + "ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}
            info["metadata"] = {"service": "generativelanguage.googleapis.com"}
            localized = {"@type": RPC + "LocalizedMessage", "locale": "en-US", "message": INVALID_KEY}
            raise ApiError(400, INVALID_KEY, [info, localized])

    def request_body(record: Json) -> Json:
        if record["body"] is None:
            raise ApiError(400, "Invalid JSON payload received. Unexpected token.")
        return parse_request(record["body"])

    async def generate(request: Request, record: Json, script: Json, method: str, model: str) -> Response:
        reply = respond(request_body(record), model, script)
        if method == "generateContent":
            if script.get("fail_after_events") is not None:
                raise ApiError(500, INTERNAL)
            if script.get("drop_after_events") is not None:
                return TruncatedResponse(pretty(reply), media_type=JSON_TYPE)
            return json_response(reply)
        chunks = stream_chunks(reply)
        if request.query_params.get("alt") != "sse":
            return Response(b"[" + b",\r\n".join(pretty(c).rstrip() for c in chunks) + b"]", media_type=JSON_TYPE)

        async def events() -> AsyncIterator[bytes]:
            delay = float(script.get("delta_delay") or 0)
            fail, drop = script.get("fail_after_events"), script.get("drop_after_events")
            for index, chunk in enumerate(chunks):
                if fail is not None and index >= int(fail):
                    yield sse_frame(ApiError(500, INTERNAL).body())
                    return
                if drop is not None and index >= int(drop):
                    raise DropConnection("scripted drop_after_events")
                if delay:
                    await asyncio.sleep(delay)
                yield sse_frame(chunk)

        headers = {"content-type": "text/event-stream", "content-disposition": "attachment"}  # no charset
        return StreamingResponse(events(), headers=headers)

    async def answer(request: Request, record: Json, script: Json, version: str, model: str, method: str) -> Response:
        if int(script.get("status", 200)) >= 400:
            body = script.get("body")
            if isinstance(body, str):
                return Response(body, status_code=int(script["status"]), media_type="text/plain")
            return json_response(body or default_error(int(script["status"]), script), int(script["status"]))
        check_auth(request)
        if not model.startswith(("gemini-", "gemma-", "learnlm-")):
            raise ApiError(404, UNKNOWN_MODEL.format(model=model, version=version, method=method))
        if method in GENERATE:
            return await generate(request, record, script, method, model)
        raw = record["body"] if isinstance(record["body"], dict) else {}
        inner = raw.get("generateContentRequest") or raw.get("generate_content_request")
        body = parse_request(inner if inner is not None else {"contents": raw.get("contents")})
        text_tokens, media_tokens = prompt_tokens(body)
        details = [{"modality": m, "tokenCount": n} for m, n in (("TEXT", text_tokens), ("IMAGE", media_tokens)) if n]
        return json_response({"totalTokens": text_tokens + media_tokens, "promptTokensDetails": details})

    async def api(request: Request) -> Response:
        started = time.monotonic()
        match = API_PATH.fullmatch(request.url.path)
        if not match or request.method != "POST" or match.group(3) not in (*GENERATE, "countTokens"):
            return html_404(request.url.path)
        version, model, method = match.groups()
        record = await control.record(request)
        script = control.next_script(record) if method in GENERATE else {}
        if script.get("delay"):
            await asyncio.sleep(float(script["delay"]))
        if (bent := await control.before(request, record, script)) is not None:
            return bent
        try:
            response = control.after(
                request, record, script, await answer(request, record, script, version, model, method)
            )
        except ApiError as error:
            response = json_response(error.body(), error.code)
        response.headers.update(HEADERS | {"server-timing": f"gfet4t7; dur={int((time.monotonic() - started) * 1000)}"})
        response.headers.update({str(k).lower(): str(v) for k, v in (script.get("headers") or {}).items()})
        return response

    routes = [
        *control.routes(),
        Route("/{path:path}", api, methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]),
    ]
    app = Starlette(routes=routes)
    app.state.fake = control
    return app


def main(argv: list[str] | None = None) -> None:
    # No uvicorn "server" header: the fake sends Google's own.
    serve(lambda args: build_app(), __doc__.splitlines()[0], argv, server_header=False)


if __name__ == "__main__":
    main()
