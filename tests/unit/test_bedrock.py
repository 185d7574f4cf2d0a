"""The Bedrock adapter's pure pieces: deployments, Converse bodies, error mapping, the stream translator, signing."""

from __future__ import annotations

import asyncio
import datetime
import importlib.util
import itertools
import threading
from typing import Any

import orjson
import pytest
from botocore.credentials import Credentials, RefreshableCredentials

from llmrelay import errors
from llmrelay.config import ConfigError, parse_config
from llmrelay.items import normalize
from llmrelay.providers import aws_auth
from llmrelay.providers.base import Call
from llmrelay.providers.bedrock import Bedrock, Translator, error_from
from llmrelay.providers.registry import make_deployment
from llmrelay.streaming.sse import Frame
from llmrelay.transport import HttpRequest

CLAUDE = "bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0"
KEYS = {"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "secret", "aws_region_name": "eu-west-1"}


def call(model: str = CLAUDE, extra: dict[str, Any] | None = None, **params: Any) -> Call:
    counter = itertools.count()
    params.setdefault("input", "hi")
    return Call(
        id="resp_1",
        params={"model": model, **params},
        deployment=make_deployment(model, api_base="http://upstream.test", extra=extra or dict(KEYS)),
        input_items=normalize(params["input"], lambda p: f"{p}_{next(counter)}"),
        created_at=0,
        new_id=lambda p: f"{p}_{next(counter)}",
    )


def body(model: str = CLAUDE, **params: Any) -> dict[str, Any]:
    return orjson.loads(Bedrock().build_request(call(model, **params)).body or b"{}")


# -- deployments ---------------------------------------------------------------------------------


def test_routes_and_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    monkeypatch.delenv("AWS_BEDROCK_RUNTIME_ENDPOINT", raising=False)
    d = make_deployment("bedrock/converse/us.anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert (d.model, d.extra["bedrock_route"]) == ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "converse")
    assert d.api_base == "https://bedrock-runtime.ap-south-1.amazonaws.com"
    d = make_deployment("bedrock/invoke/m", extra={"aws_bedrock_runtime_endpoint": "https://vpce.example/"})
    assert (d.extra["bedrock_route"], d.api_base) == ("invoke", "https://vpce.example")
    d = make_deployment("bedrock/m", api_base="http://a.test", extra={"aws_bedrock_runtime_endpoint": "http://b.test"})
    assert d.api_base == "http://a.test"  # api_base wins, as in LiteLLM


def test_the_account_is_part_of_the_deployment_identity() -> None:
    a = make_deployment(CLAUDE, extra={**KEYS})
    b = make_deployment(CLAUDE, extra={**KEYS, "aws_access_key_id": "AKIDOTHER"})
    assert a.id != b.id and a.id == make_deployment(CLAUDE, extra={**KEYS}).id


def test_config_takes_litellms_aws_keys() -> None:
    entry = {"model_name": "c", "litellm_params": {"model": CLAUDE, **KEYS, "aws_profile_name": "p"}}
    (dep,) = parse_config({"model_list": [entry]}).deployments()
    assert dep.extra["aws_access_key_id"] == "AKIDEXAMPLE" and dep.extra["aws_profile_name"] == "p"
    assert dep.api_base == "https://bedrock-runtime.eu-west-1.amazonaws.com"
    entry["litellm_params"].update(aws_role_name="arn:aws:iam::1:role/r", aws_sts_endpoint="http://sts.test")
    (dep,) = parse_config({"model_list": [entry]}).deployments()
    assert dep.extra["aws_role_name"] == "arn:aws:iam::1:role/r" and dep.extra["aws_sts_endpoint"] == "http://sts.test"


# -- Converse bodies -----------------------------------------------------------------------------


def test_url_escapes_an_arn_as_one_segment() -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc"
    req = Bedrock().build_request(call(f"bedrock/{arn}", stream=True))
    assert req.url == "http://upstream.test/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3A" \
        "application-inference-profile%2Fabc/converse-stream"  # fmt: skip
    assert req.headers["accept"] == "application/vnd.amazon.eventstream"


def test_tool_choice_none_offers_no_tools_and_required_is_any() -> None:
    tool = {"type": "function", "name": "f", "parameters": {"type": "object"}}
    assert "toolConfig" not in body(tools=[tool], tool_choice="none")
    assert body(tools=[tool], tool_choice="required")["toolConfig"]["toolChoice"] == {"any": {}}
    named = body(tools=[tool], tool_choice={"type": "function", "name": "f"})["toolConfig"]["toolChoice"]
    assert named == {"tool": {"name": "f"}}


def test_images_and_documents() -> None:
    parts = [
        {"type": "input_image", "image_url": "data:image/jpeg;base64,AAAA"},
        {"type": "input_image", "image_url": "s3://bucket/cat.JPG"},
        {"type": "input_file", "file_data": "data:application/pdf;base64,JVBE", "filename": "Q3 report (final).v2.pdf"},
    ]
    content = body(input=[{"role": "user", "content": parts}])["messages"][0]["content"]
    assert content[0] == {"image": {"format": "jpeg", "source": {"bytes": "AAAA"}}}
    assert content[1] == {"image": {"format": "jpeg", "source": {"s3Location": {"uri": "s3://bucket/cat.JPG"}}}}
    assert content[2]["document"] == {"format": "pdf", "name": "Q3 report (final)-v2", "source": {"bytes": "JVBE"}}


@pytest.mark.parametrize(
    ("part", "says"),
    [
        ({"type": "input_image", "image_url": "https://example.com/a.png"}, "cannot fetch"),
        ({"type": "input_image", "image_url": "data:image/bmp;base64,AA"}, "image/bmp"),
    ],
)
def test_media_bedrock_cannot_take_is_a_400(part: dict[str, Any], says: str) -> None:
    with pytest.raises(errors.BadRequestError, match=says):
        body(input=[{"role": "user", "content": [part]}])


def test_reasoning_settings_per_model_family() -> None:
    sent = body(reasoning={"effort": "high"})
    assert sent["additionalModelRequestFields"]["thinking"] == {"type": "enabled", "budget_tokens": 16384}
    assert sent["inferenceConfig"]["maxTokens"] == 4096 + 16384
    nova = body("bedrock/us.amazon.nova-2-lite-v1:0", reasoning={"effort": "minimal"})
    assert nova["additionalModelRequestFields"] == {"reasoningConfig": {"type": "enabled", "maxReasoningEffort": "low"}}


def test_computer_use_needs_claude() -> None:
    tool = {"type": "computer_use_preview", "display_width": 800, "display_height": 600, "environment": "browser"}
    with pytest.raises(errors.BadRequestError, match="needs a Claude model"):
        body("bedrock/amazon.nova-pro-v1:0", tools=[tool])
    invoke = Bedrock().build_request(call(tools=[tool]))
    assert invoke.url.endswith("/invoke") and orjson.loads(invoke.body or b"{}")["anthropic_beta"]


def test_structured_output_is_output_config() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    sent = body(text={"format": {"type": "json_schema", "name": "r", "schema": schema}})
    fmt = sent["outputConfig"]["textFormat"]
    assert fmt["type"] == "json_schema" and orjson.loads(fmt["structure"]["jsonSchema"]["schema"]) == schema


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "payload", "status", "code"),
    [
        ({"x-amzn-ErrorType": "ThrottlingException:http://internal.amazon.com/coral/"}, {"message": "m"}, 429,
         "rate_limit_exceeded"),
        ({}, {"__type": "com.amazon.coral.validate#ValidationException", "message": "m"}, 400, "invalid_request_error"),
        ({"x-amzn-ErrorType": "ModelTimeoutException"}, {"message": "m"}, 504, "timeout"),
        ({"x-amzn-ErrorType": "ExpiredTokenException"}, {"Message": "m"}, 401, "invalid_api_key"),
        ({"x-amzn-ErrorType": "ValidationException"}, {"message": "Input is too long for requested model."}, 400,
         "context_length_exceeded"),
    ],
)  # fmt: skip
def test_errors_map_to_openai(headers: dict[str, str], payload: dict[str, Any], status: int, code: str) -> None:
    lowered = {k.lower(): v for k, v in headers.items()}  # aiohttp's headers are case-insensitive
    err = error_from(403 if status == 401 else status, orjson.dumps(payload), lowered)
    assert (err.status_code, err.body["code"]) == (status, code)  # type: ignore[index]


# -- the stream translator -----------------------------------------------------------------------


def feed(events: list[tuple[str, dict[str, Any]]], **params: Any) -> Translator:
    t = Translator(call(**params))
    for kind, data in events:
        t.feed(Frame(kind, orjson.dumps(data)))
    t.finish()
    return t


def test_a_stream_without_its_metadata_event_still_completes() -> None:
    t = feed([("messageStart", {}), ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "hi"}}),
              ("messageStop", {"stopReason": "end_turn"})])  # fmt: skip
    assert t.response is not None and t.response["status"] == "completed"


def test_malformed_tool_use_fails_the_response() -> None:
    t = feed([("messageStart", {}), ("messageStop", {"stopReason": "malformed_tool_use"}), ("metadata", {})])
    assert t.response is not None and t.response["status"] == "failed"


def test_redacted_reasoning_replays_as_redacted_content() -> None:
    redacted = {"contentBlockIndex": 0, "delta": {"reasoningContent": {"redactedContent": "UkVE"}}}
    t = feed([("messageStart", {}), ("contentBlockDelta", redacted),
              ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": "ok"}}),
              ("messageStop", {"stopReason": "end_turn"}), ("metadata", {"usage": {"inputTokens": 3}})])  # fmt: skip
    assert t.response is not None
    reasoning = t.response["output"][0]
    assert reasoning["encrypted_content"] == "bedrock-redacted:UkVE"
    replay = call(input=[reasoning, {"role": "user", "content": "next"}])
    sent = orjson.loads(Bedrock().build_request(replay).body or b"{}")
    assert sent["messages"][0] == {"role": "assistant", "content": [{"reasoningContent": {"redactedContent": "UkVE"}}]}


def test_another_providers_reasoning_is_not_sent_to_bedrock() -> None:
    foreign = {"type": "reasoning", "summary": [], "encrypted_content": "anthropic:sig"}
    sent = body(input=[{"role": "user", "content": "a"}, foreign, {"role": "user", "content": "b"}])
    assert [m["role"] for m in sent["messages"]] == ["user"]


def test_a_stream_exception_fails_with_the_mapped_code() -> None:
    t = Translator(call())
    t.feed(Frame("messageStart", b"{}"))
    out = t.feed(Frame("exception:modelStreamErrorException", b'{"message":"model broke"}'))
    assert out[-1].type == "response.failed"
    # A Response's error codes are openai's fixed list: the model's failure is a server_error there.
    assert t.response is not None and t.response["error"]["code"] == "server_error"
    assert "model broke" in t.response["error"]["message"]


# -- signing -------------------------------------------------------------------------------------


async def test_explicit_keys_sign_on_the_loop_and_the_url_is_sent_as_signed() -> None:
    dep = call().deployment
    req = HttpRequest("POST", "http://upstream.test/model/a%3Ab/converse", {"content-type": "application/json"}, b"{}")
    signed = await aws_auth.SigV4(dep.extra).headers(req)
    assert signed["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/bedrock/aws4_request" in signed["Authorization"] and "X-Amz-Date" in signed


async def test_the_chain_resolves_once_off_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[threading.Thread] = []

    def resolve(bc: Any, extra: dict[str, Any]) -> Credentials:
        threads.append(threading.current_thread())
        return Credentials("AKIDCHAIN", "s")

    monkeypatch.setattr(aws_auth, "_resolve", resolve)
    signer = aws_auth.SigV4({"aws_region_name": "us-east-1", "aws_profile_name": "once"})
    req = HttpRequest("POST", "http://upstream.test/model/m/converse", {}, b"{}")
    await asyncio.gather(signer.headers(req), signer.headers(req))
    assert len(threads) == 1 and threads[0] is not threading.main_thread()


async def test_a_refused_signature_reads_the_chain_again(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = iter(["AKIDOLD", "AKIDROTATED"])
    monkeypatch.setattr(aws_auth, "_resolve", lambda bc, extra: Credentials(next(keys), "s"))
    signer = aws_auth.SigV4({"aws_region_name": "us-east-1", "aws_profile_name": "rotating"})
    req = HttpRequest("POST", "http://upstream.test/model/m/converse", {}, b"{}")
    first = await signer.headers(req)
    assert "Credential=AKIDOLD/" in (await signer.headers(req))["Authorization"]  # cached
    signer.refused(first)
    assert "Credential=AKIDROTATED/" in (await signer.headers(req))["Authorization"]


async def test_expiring_credentials_refresh_off_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    refreshed: list[threading.Thread] = []
    soon = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5)).isoformat()
    later = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)).isoformat()

    def refresh() -> dict[str, str]:
        refreshed.append(threading.current_thread())
        return {"access_key": "AKIDNEW", "secret_key": "s", "token": "t", "expiry_time": later}

    creds = RefreshableCredentials("AKIDOLD", "s", "t", datetime.datetime.fromisoformat(soon), refresh, "test")
    monkeypatch.setattr(aws_auth, "_resolve", lambda bc, extra: creds)
    req = HttpRequest("POST", "http://upstream.test/model/m/converse", {}, b"{}")
    signed = await aws_auth.SigV4({"aws_region_name": "us-east-1", "aws_profile_name": "expiring"}).headers(req)
    assert "Credential=AKIDNEW/" in signed["Authorization"]
    assert refreshed and all(t is not threading.main_thread() for t in refreshed)


def test_no_credentials_is_a_401_naming_what_to_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "")
    with pytest.raises(errors.AuthenticationError, match="aws_access_key_id"):
        aws_auth._resolve(aws_auth._botocore(), {})


def test_blank_text_parts_are_not_sent() -> None:
    empty = {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": ""}]}
    sent = body(input=[{"role": "user", "content": "a"}, empty, {"role": "user", "content": "b"}])
    assert sent["messages"] == [{"role": "user", "content": [{"text": "a"}, {"text": "b"}]}]


def test_without_botocore_the_config_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "botocore" else real(name, *a))
    entry = {"model_name": "c", "litellm_params": {"model": CLAUDE}}
    with pytest.raises(ConfigError, match=r"litellm_params\.model: .*pip install 'llmrelay\[bedrock\]'"):
        parse_config({"model_list": [entry]}).deployments()
