"""Fake AWS Bedrock runtime: a real HTTP server speaking Converse, ConverseStream, InvokeModel(WithResponseStream)
and CountTokens, streams framed as ``application/vnd.amazon.eventstream`` with real CRCs.

Run with ``python -m tests.fakes.bedrock_upstream --port N``. Routes: ``POST /model/{modelId}/converse``,
``/converse-stream``, ``/invoke``, ``/invoke-with-response-stream``, ``/count-tokens`` (``modelId`` percent-escaped,
as boto3 sends an ARN). Every request must carry a SigV4 signature (service ``bedrock``) made with ACCESS_KEY /
SECRET_KEY, or SESSION_ACCESS_KEY / SESSION_SECRET_KEY plus ``X-Amz-Security-Token: SESSION_TOKEN``, or
credentials its STS issued (``POST /``, see aws_sts.py); the fake recomputes it with botocore and answers AWS's
403s otherwise.

The "model" is deterministic: ``Echo (turns=N): <last user text>``; with tools, a toolUse of the first tool
(``{"q": <last user text>}``) until the last user turn holds a toolResult, then ``Echo (turns=N): tool said <text>``.
With ``additionalModelRequestFields.thinking`` enabled it first reasons (``reasoningContent`` signed with an HMAC)
and, as Claude does, refuses a replayed assistant toolUse turn that does not start with its signed reasoning.
Invoke speaks Claude's Messages body (``anthropic_version: bedrock-2023-05-31``); a computer tool gets one
``screenshot`` action until a tool_result comes back.

Reply scripts (``/_fake/enqueue``), consumed FIFO by converse / invoke calls:

- ``{"error": "ThrottlingException", "status": 429, "message": "..."}``: that AWS error (``{"status": 503}`` alone
  picks the exception AWS answers with that status); ``{"headers": {...}}``: extra reply headers
- ``{"fail_after_events": 3}``: 3 events, then an internalServerException event (non-streaming: a 500)
- ``{"drop_after_events": 3}``: 3 events, then cut the connection (non-streaming: half the body, then cut)
- ``{"stream_exception": "throttlingException", "after_events": 2}``: a stream's exception event after 2 events
- ``{"stop_reason": "guardrail_intervened"}``; ``{"text": "..."}``; ``{"cached_tokens": N}`` (a cache read of N
  on top of the prompt, whatever the request marks)

Prompt caching is accounted as Bedrock does for Claude and Nova (tests/fakes/prompt_cache.py): a prefix up to a
``cachePoint`` block (Converse) or a ``cache_control`` block (Invoke) of at least 1024 tokens is written on first
sight and read later; ``inputTokens`` excludes both. More than 4 cache points, a cachePoint for a model that does
not cache, or after Nova's tools, is a ValidationException. Tokens are words (of each block's JSON).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from llmrelay.providers import eventstream
from tests.fakes import aws_sts
from tests.fakes.control import Control, DropConnection, TruncatedResponse, serve
from tests.fakes.prompt_cache import MAX_MARKS, Block, PromptCache

Json = dict[str, Any]
ACCESS_KEY, SECRET_KEY = "AKIAFAKEBEDROCKTEST1", "fake-bedrock-secret-key"
SESSION_ACCESS_KEY, SESSION_SECRET_KEY, SESSION_TOKEN = "ASIAFAKEBEDROCKTEST2", "fake-session-secret", "fake-token"
SECRETS = {ACCESS_KEY: (SECRET_KEY, None), SESSION_ACCESS_KEY: (SESSION_SECRET_KEY, SESSION_TOKEN)}
ACTIONS = ("converse", "converse-stream", "invoke", "invoke-with-response-stream", "count-tokens")
PATH = re.compile(r"/model/([^/]+)/([a-z-]+)")
CORAL = ":http://internal.amazon.com/coral/com.amazon.bedrock/"
STATUS = {"ValidationException": 400, "AccessDeniedException": 403, "ResourceNotFoundException": 404,
          "ModelTimeoutException": 408, "ThrottlingException": 429, "ModelNotReadyException": 429,
          "ModelErrorException": 424, "InternalServerException": 500, "ServiceUnavailableException": 503}  # fmt: skip
REQUEST_FIELDS = {"messages", "system", "inferenceConfig", "toolConfig", "guardrailConfig", "promptVariables",
                  "additionalModelRequestFields", "additionalModelResponseFieldPaths", "requestMetadata",
                  "performanceConfig", "serviceTier", "outputConfig"}  # fmt: skip
BLOCKS = {"text", "image", "document", "video", "audio", "toolUse", "toolResult", "guardContent", "cachePoint",
          "reasoningContent", "citationsContent", "searchResult"}  # fmt: skip
MEDIA_FORMATS = {"image": {"png", "jpeg", "gif", "webp"},
                 "document": {"pdf", "csv", "doc", "docx", "xls", "xlsx", "html", "txt", "md"}}  # fmt: skip
ERROR_BY_STATUS = {status: kind for kind, status in STATUS.items() if kind != "ModelNotReadyException"}
ERROR_BY_STATUS[401] = "UnrecognizedClientException"  # AWS says 403; a script may ask for 401
THINKING_TOKENS = 12
SIGNING_KEY = b"fake-bedrock-reasoning"


class AwsError(Exception):
    def __init__(self, kind: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.kind, self.message, self.status = kind, message, status or STATUS.get(kind, 400)

    def response(self) -> Response:
        headers = {"x-amzn-errortype": self.kind + CORAL, "x-amzn-requestid": secrets.token_hex(16)}
        return Response(orjson.dumps({"message": self.message}), self.status, headers, "application/json")


def sign_reasoning(text: str) -> str:
    return base64.b64encode(hmac.new(SIGNING_KEY, text.encode(), hashlib.sha256).digest()).decode()


# -- SigV4 ----------------------------------------------------------------------------------------------------


def verify_signature(request: Request, body: bytes, service: str = "bedrock") -> None:
    auth = request.headers.get("authorization", "")
    match = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                         r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})", auth)  # fmt: skip
    if not match:
        raise AwsError("MissingAuthenticationTokenException", "Missing Authentication Token", 403)
    access, _, region, signed_for, signed, signature = match.groups()
    if access not in SECRETS or signed_for != service:
        raise AwsError("UnrecognizedClientException", "The security token included in the request is invalid.", 403)
    secret, token = SECRETS[access]
    if token is not None and request.headers.get("x-amz-security-token") != token:
        raise AwsError("UnrecognizedClientException", "The security token included in the request is invalid.", 403)
    names = signed.split(";")
    headers = {name: request.headers.get(name, "") for name in names}
    raw_path = request.scope["raw_path"].decode()
    query = request.scope.get("query_string", b"").decode()
    url = f"http://{request.headers['host']}{raw_path}" + (f"?{query}" if query else "")
    aws = AWSRequest(method=request.method, url=url, data=body, headers=headers)
    aws.context["timestamp"] = request.headers.get("x-amz-date", "")
    signer = SigV4Auth(Credentials(access, secret, token), service, region)
    expected = signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws)
    if not hmac.compare_digest(expected, signature):
        raise AwsError("InvalidSignatureException", "The request signature we calculated does not match the "
                       "signature you provided. Check your AWS Secret Access Key and signing method.", 403)  # fmt: skip


# -- Converse -------------------------------------------------------------------------------------------------


def check_converse(body: Any) -> list[Json]:
    if not isinstance(body, dict):
        raise AwsError("ValidationException", "Malformed input request, please reformat your input and try again.")
    if unknown := set(body) - REQUEST_FIELDS:
        raise AwsError("ValidationException", f"Malformed input request: extraneous key [{sorted(unknown)[0]}] "
                       "is not permitted, please reformat your input and try again.")  # fmt: skip
    messages = body.get("messages") or []
    if not messages or messages[0].get("role") != "user":
        raise AwsError("ValidationException", "A conversation must start with a user message. Try again with a "
                       "conversation that starts with a user message.")  # fmt: skip
    for i, m in enumerate(messages):
        if i and m.get("role") == messages[i - 1].get("role"):
            raise AwsError("ValidationException", "A conversation must alternate between user and assistant roles.")
        for block in m.get("content") or []:
            if len(block) != 1 or not set(block) <= BLOCKS:
                raise AwsError("ValidationException", f"messages.{i}.content: a content block must hold exactly one "
                               f"of {sorted(BLOCKS)}; got {sorted(block)}")  # fmt: skip
            check_media(block, f"messages.{i}.content")
    thinking = ((body.get("additionalModelRequestFields") or {}).get("thinking") or {}).get("type") == "enabled"
    for i, m in enumerate(messages):
        content = m.get("content") or []
        for block in content:
            r = (block.get("reasoningContent") or {}).get("reasoningText")
            if r and r.get("signature") != sign_reasoning(r.get("text", "")):
                raise AwsError("ValidationException", f"messages.{i}.content: Invalid `signature` in `thinking` block")
        uses = any("toolUse" in b for b in content)
        if thinking and m["role"] == "assistant" and uses and "reasoningContent" not in content[0]:
            raise AwsError("ValidationException", f"messages.{i}.content.0.type: Expected `thinking` or "
                           "`redacted_thinking`, but found `tool_use`. When `thinking` is enabled, a final "
                           "`assistant` message must start with a thinking block.")  # fmt: skip
    return messages


def check_media(block: Json, where: str) -> None:
    """An image or document block: a format Converse knows, and one source (bytes or an S3 location)."""
    kind = next(iter(block))
    if kind not in MEDIA_FORMATS:
        return
    media = block[kind]
    if media.get("format") not in MEDIA_FORMATS[kind]:
        raise AwsError("ValidationException", f"{where}.{kind}.format: Member must satisfy enum value set: "
                       f"{sorted(MEDIA_FORMATS[kind])}")  # fmt: skip
    source = media.get("source") or {}
    if len(source) != 1 or not set(source) <= {"bytes", "s3Location"}:
        raise AwsError("ValidationException", f"{where}.{kind}.source: exactly one of bytes or s3Location is required")
    if "bytes" in source:
        try:
            base64.b64decode(source["bytes"], validate=True)
        except ValueError:
            raise AwsError("ValidationException", f"{where}.{kind}.source.bytes: Invalid base64") from None
    if kind == "document" and not media.get("name"):
        raise AwsError("ValidationException", f"{where}.document.name: Member must not be null")


def prompt_blocks(body: Json, model: str) -> list[Block]:
    """A Converse prompt as the cache sees it: tools, system, messages; a cachePoint marks the block before it."""
    out: list[Block] = []
    points = 0
    groups = [("tool", (body.get("toolConfig") or {}).get("tools") or []), ("system", body.get("system") or [])]
    groups += [(m.get("role"), m.get("content") or []) for m in body.get("messages") or []]
    for where, blocks in groups:
        for block in blocks:
            if "cachePoint" not in block:
                out.append(Block(len(str(block).split()), [where, block]))
                continue
            points += 1
            if ("nova" in model and where == "tool") or not ("claude" in model or "nova" in model):
                raise AwsError("ValidationException", "You invoked an unsupported model or your request did not "
                               "allow prompt caching. See the documentation for more information.")  # fmt: skip
            if out:
                out[-1] = Block(out[-1].tokens, out[-1].content, marked=True)
    if points > MAX_MARKS:
        raise AwsError("ValidationException", f"The number of cache points in the request ({points}) exceeds the "
                       f"maximum of {MAX_MARKS}.")  # fmt: skip
    return out


def last_user(messages: list[Json]) -> tuple[str, str | None, int]:
    """(last user text, what the tool said if the last turn is a toolResult, user turns with text)."""
    turns = sum(1 for m in messages if m["role"] == "user" and any("text" in b for b in m["content"]))
    said, text = None, ""
    for block in messages[-1]["content"]:
        if "toolResult" in block:
            said = " ".join(c.get("text", "") for c in block["toolResult"].get("content") or [])
        elif "text" in block:
            text = block["text"]
    if not text:
        text = next((b["text"] for m in reversed(messages) if m["role"] == "user" for b in m["content"]
                     if "text" in b), "")  # fmt: skip
    return text, said, turns


def converse(body: Json, script: Json, cache: PromptCache, model: str) -> Json:
    messages = check_converse(body)
    prompt = cache.account(model, prompt_blocks(body, model))
    text, said, turns = last_user(messages)
    content: list[Json] = []
    if ((body.get("additionalModelRequestFields") or {}).get("thinking") or {}).get("type") == "enabled":
        thought = f"Thinking about: {text}"
        content.append({"reasoningContent": {"reasoningText": {"text": thought, "signature": sign_reasoning(thought)}}})
    tools = (body.get("toolConfig") or {}).get("tools") or []
    if tools and said is None:
        name = tools[0]["toolSpec"]["name"]
        content.append(
            {"toolUse": {"toolUseId": "tooluse_" + secrets.token_hex(8), "name": name, "input": {"q": text}}}
        )
        stop = "tool_use"
    else:
        echo = f"Echo (turns={turns}): tool said {said}" if said else f"Echo (turns={turns}): {text}"
        if fmt := (body.get("outputConfig") or {}).get("textFormat"):  # answer as the JSON schema asks
            schema = orjson.loads(fmt["structure"]["jsonSchema"]["schema"])
            fields = {"echo": echo, "turns": turns}
            echo = orjson.dumps({k: v for k, v in fields.items() if k in (schema.get("properties") or {})}).decode()
        words = re.findall(r"\S+\s*", script.get("text") or echo)
        limit = int((body.get("inferenceConfig") or {}).get("maxTokens") or len(words))
        content.append({"text": "".join(words[:limit]).rstrip()})
        stop = "max_tokens" if len(words) > limit else "end_turn"
    read, written = prompt.read + int(script.get("cached_tokens") or 0), prompt.written
    out = sum(len(str(b).split()) for b in content) + (THINKING_TOKENS if "reasoningContent" in content[0] else 0)
    usage = {"inputTokens": prompt.uncached, "outputTokens": out, "totalTokens": prompt.uncached + read + written + out}
    if read or written:
        usage |= {"cacheReadInputTokens": read, "cacheWriteInputTokens": written}
    return {"output": {"message": {"role": "assistant", "content": content}},
            "stopReason": script.get("stop_reason") or stop, "usage": usage, "metrics": {"latencyMs": 42}}  # fmt: skip


def stream_events(reply: Json) -> list[tuple[str, Json]]:
    """A Converse reply as ConverseStream's events, text in word-sized deltas."""
    events: list[tuple[str, Json]] = [("messageStart", {"role": "assistant"})]
    for i, block in enumerate(reply["output"]["message"]["content"]):
        if "toolUse" in block:
            use = block["toolUse"]
            events.append(("contentBlockStart", {"contentBlockIndex": i, "start": {"toolUse": {
                "toolUseId": use["toolUseId"], "name": use["name"]}}}))  # fmt: skip
            raw = orjson.dumps(use["input"]).decode()
            for piece in (raw[: len(raw) // 2], raw[len(raw) // 2 :]):
                events.append(("contentBlockDelta", {"contentBlockIndex": i, "delta": {"toolUse": {"input": piece}}}))
        elif "reasoningContent" in block:
            r = block["reasoningContent"]["reasoningText"]
            for delta in ({"text": r["text"]}, {"signature": r["signature"]}):
                events.append(("contentBlockDelta", {"contentBlockIndex": i, "delta": {"reasoningContent": delta}}))
        else:
            for word in re.findall(r"\S+\s*", block["text"]):
                events.append(("contentBlockDelta", {"contentBlockIndex": i, "delta": {"text": word}}))
        events.append(("contentBlockStop", {"contentBlockIndex": i}))
    events.append(("messageStop", {"stopReason": reply["stopReason"]}))
    events.append(("metadata", {"usage": reply["usage"], "metrics": reply["metrics"]}))
    return events


def padded(payload: Json) -> bytes:
    # The service pads each event with a random-length "p" field, so sizes leak nothing.
    return orjson.dumps({**payload, "p": "abcdefghijklmnopqrstuvwxyz"[: secrets.randbelow(26) + 1]})


# -- InvokeModel (Claude's Messages body) ---------------------------------------------------------------------


def invoke(body: Any) -> Json:
    from tests.fakes import anthropic_upstream  # on first use: the fake starts faster without it

    if not isinstance(body, dict) or body.get("anthropic_version") != "bedrock-2023-05-31":
        raise AwsError("ValidationException", "Malformed input request: #: required key [anthropic_version] not found")
    if "model" in body or "stream" in body:
        raise AwsError("ValidationException", "Malformed input request: #: extraneous key [model] is not permitted")
    messages = body.get("messages") or []
    last = messages[-1]["content"] if messages else []
    last = [{"type": "text", "text": last}] if isinstance(last, str) else last
    text = next((b.get("text", "") for b in last if b.get("type") == "text"), "")
    computer = any(str(t.get("type", "")).startswith("computer_") for t in body.get("tools") or [])
    if computer and not any(b.get("type") == "tool_result" for b in last):
        block = {"type": "tool_use", "id": "toolu_" + secrets.token_hex(8), "name": "computer",
                 "input": {"action": "screenshot"}}  # fmt: skip
        stop = "tool_use"
    else:
        block, stop = {"type": "text", "text": f"Echo (invoke): {text or 'screenshot received'}"}, "end_turn"
    return {"id": "msg_bdrk_" + secrets.token_hex(8), "type": "message", "role": "assistant",
            "model": "claude", "content": [block], "stop_reason": stop, "stop_sequence": None,
            "usage": {"input_tokens": anthropic_upstream.count_input_tokens(body), "output_tokens": 5}}  # fmt: skip


def invoke_events(message: Json) -> list[Json]:
    events: list[Json] = [{"type": "message_start", "message": {**message, "content": [], "stop_reason": None}}]
    for i, block in enumerate(message["content"]):
        if block["type"] == "tool_use":
            events.append({"type": "content_block_start", "index": i, "content_block": {**block, "input": {}}})
            events.append({"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta",
                           "partial_json": orjson.dumps(block["input"]).decode()}})  # fmt: skip
        else:
            events.append({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}})
            events.append(
                {"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": block["text"]}}
            )
        events.append({"type": "content_block_stop", "index": i})
    events.append(
        {"type": "message_delta", "delta": {"stop_reason": message["stop_reason"]}, "usage": {"output_tokens": 5}}
    )
    events.append({"type": "message_stop", "amazon-bedrock-invocationMetrics": {"inputTokenCount": 10}})
    return events


# -- the app --------------------------------------------------------------------------------------------------


def build_app() -> Starlette:
    cache = PromptCache()
    control = Control("bedrock", "", on_reset=cache.clear)

    async def api(request: Request) -> Response:
        if request.scope["raw_path"] == b"/" and request.method == "POST":  # STS, for roles to assume
            (await control.record(request))["model"] = "sts"
            try:
                return await aws_sts.answer(request, await request.body(), SECRETS, verify_signature)
            except AwsError as error:
                return error.response()
        match = PATH.fullmatch(request.scope["raw_path"].decode())
        if not match or request.method != "POST" or match.group(2) not in ACTIONS:
            return Response(orjson.dumps({"message": "Unknown operation"}), 404, media_type="application/json")
        model, action = unquote(match.group(1)), match.group(2)
        record = await control.record(request)
        record["model"] = model
        script = control.next_script(record) if action != "count-tokens" else {}
        if (bent := await control.before(request, record, script)) is not None:
            return bent
        try:
            verify_signature(request, await request.body())
            response = control.after(request, record, script, answer(record, script, action))
        except AwsError as error:
            response = error.response()
        response.headers["x-amzn-requestid"] = secrets.token_hex(16)
        response.headers.update({str(k).lower(): str(v) for k, v in (script.get("headers") or {}).items()})
        return response

    def answer(record: Json, script: Json, action: str) -> Response:
        if script.get("error") or int(script.get("status") or 200) >= 400:
            kind = script.get("error") or ERROR_BY_STATUS.get(int(script["status"]), "InternalServerException")
            raise AwsError(kind, script.get("message") or "Scripted error.", script.get("status"))
        if script.get("fail_after_events") is not None and action in ("converse", "invoke"):
            raise AwsError("InternalServerException", "Scripted failure.")
        body = record["body"]
        if action == "count-tokens":
            what = (body or {}).get("input") or {}
            if "invokeModel" in what:  # the body is a base64 blob holding Claude's Messages body
                counted = invoke(orjson.loads(base64.b64decode(what["invokeModel"]["body"])))["usage"]["input_tokens"]
            else:
                check_converse(what.get("converse") or {})
                counted = len(orjson.dumps(what["converse"])) // 16
            return Response(orjson.dumps({"inputTokens": counted}), media_type="application/json")
        if action.startswith("invoke"):
            message = invoke(body)
            from tests.fakes import anthropic_upstream

            try:
                anthropic_upstream.validate_cache_marks(body)
            except anthropic_upstream.ApiError as exc:
                raise AwsError("ValidationException", exc.message) from None
            message["usage"] = anthropic_upstream.cached_usage(
                message["usage"], {**body, "model": record["model"]}, cache
            )
            if action == "invoke":
                return Response(orjson.dumps(message), media_type="application/json")
            chunks = [{"bytes": base64.b64encode(orjson.dumps(e)).decode(), "p": "abc"} for e in invoke_events(message)]
            return stream([eventstream.event("chunk", orjson.dumps(c)) for c in chunks], script)
        reply = converse(body, script, cache, record["model"])
        if action == "converse":
            if script.get("drop_after_events") is not None:
                return TruncatedResponse(orjson.dumps(reply))
            return Response(orjson.dumps(reply), media_type="application/json")
        return stream([eventstream.event(kind, padded(data)) for kind, data in stream_events(reply)], script)

    def stream(frames: list[bytes], script: Json) -> Response:
        kind = script.get("stream_exception") or ("internalServerException" if "fail_after_events" in script else None)
        if kind:
            after = int(script.get("after_events") or script.get("fail_after_events") or 0)
            exc = eventstream.exception(kind, orjson.dumps({"message": script.get("message") or "Scripted failure."}))
            frames = [*frames[:after], exc]
        drop = script.get("drop_after_events")

        async def body() -> AsyncIterator[bytes]:
            for index, frame in enumerate(frames):
                if drop is not None and index >= int(drop):
                    raise DropConnection("scripted drop_after_events")
                yield frame

        return StreamingResponse(body(), media_type=eventstream.CONTENT_TYPE)

    app = Starlette(routes=[*control.routes(), Route("/{path:path}", api, methods=["GET", "POST"])])
    app.state.fake = control
    return app


def main(argv: list[str] | None = None) -> None:
    serve(lambda args: build_app(), __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    main()
