"""The fake Bedrock upstream, driven by boto3's bedrock-runtime client: if boto3 signs, parses the event-stream
framing and maps the errors, the wire format is right."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import botocore
import botocore.config
import botocore.exceptions
import pytest

from tests.fakes import FakeServer, aws_sts, start_fake
from tests.fakes import bedrock_upstream as fake_module

MODEL = "anthropic.claude-sonnet-4-5-20250929-v1:0"
ARN = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0"
TOOLS = {"tools": [{"toolSpec": {"name": "lookup", "description": "Look something up.",
                                 "inputSchema": {"json": {"type": "object"}}}}]}  # fmt: skip


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeServer]:
    with start_fake("tests.fakes.bedrock_upstream") as server:
        yield server


@pytest.fixture(autouse=True)
def fresh(fake: FakeServer) -> None:
    fake.reset()


def client(fake: FakeServer, key: str = fake_module.ACCESS_KEY, secret: str = fake_module.SECRET_KEY,
           token: str | None = None) -> Any:  # fmt: skip
    return boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=fake.root,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        aws_session_token=token,
        config=botocore.config.Config(retries={"total_max_attempts": 1}),
    )


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"text": text}]}


def test_converse_text(fake: FakeServer) -> None:
    reply = client(fake).converse(modelId=MODEL, messages=[user("hello there")], system=[{"text": "be brief"}])
    assert reply["output"]["message"]["content"] == [{"text": "Echo (turns=1): hello there"}]
    assert reply["stopReason"] == "end_turn"
    assert reply["usage"]["inputTokens"] > 0
    assert fake.requests()[0]["model"] == MODEL


def test_converse_stream_event_stream_framing(fake: FakeServer) -> None:
    reply = client(fake).converse_stream(modelId=ARN, messages=[user("one two three")])
    events = list(reply["stream"])
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert text == "Echo (turns=1): one two three"
    assert fake.requests()[0]["model"] == ARN  # an ARN survives boto3's escaping and the fake's signature check


def test_tool_use_stream_and_result(fake: FakeServer) -> None:
    c = client(fake)
    events = list(c.converse_stream(modelId=MODEL, messages=[user("weather")], toolConfig=TOOLS)["stream"])
    start = next(e["contentBlockStart"]["start"]["toolUse"] for e in events if "contentBlockStart" in e)
    args = "".join(e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events
                   if "toolUse" in e.get("contentBlockDelta", {}).get("delta", {}))  # fmt: skip
    assert start["name"] == "lookup" and json.loads(args) == {"q": "weather"}
    messages = [user("weather"),
                {"role": "assistant", "content": [{"toolUse": {"toolUseId": start["toolUseId"], "name": "lookup",
                                                               "input": {"q": "weather"}}}]},
                {"role": "user", "content": [{"toolResult": {"toolUseId": start["toolUseId"],
                                                             "content": [{"text": "sunny"}]}}]}]  # fmt: skip
    reply = c.converse(modelId=MODEL, messages=messages, toolConfig=TOOLS)
    assert reply["output"]["message"]["content"][0]["text"] == "Echo (turns=1): tool said sunny"


def test_reasoning_is_signed_and_replayed(fake: FakeServer) -> None:
    c = client(fake)
    thinking = {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    reply = c.converse(modelId=MODEL, messages=[user("w")], toolConfig=TOOLS, additionalModelRequestFields=thinking)
    content = reply["output"]["message"]["content"]
    assert "signature" in content[0]["reasoningContent"]["reasoningText"]
    use = content[1]["toolUse"]
    result = {"role": "user", "content": [{"toolResult": {"toolUseId": use["toolUseId"], "content": [{"text": "x"}]}}]}
    ok = c.converse(modelId=MODEL, messages=[user("w"), {"role": "assistant", "content": content}, result],
                    toolConfig=TOOLS, additionalModelRequestFields=thinking)  # fmt: skip
    assert ok["output"]["message"]["content"][-1]["text"].endswith("tool said x")
    with pytest.raises(c.exceptions.ValidationException, match="must start with a thinking block"):
        c.converse(modelId=MODEL, messages=[user("w"), {"role": "assistant", "content": content[1:]}, result],
                   toolConfig=TOOLS, additionalModelRequestFields=thinking)  # fmt: skip


def test_session_credentials(fake: FakeServer) -> None:
    c = client(fake, fake_module.SESSION_ACCESS_KEY, fake_module.SESSION_SECRET_KEY, fake_module.SESSION_TOKEN)
    assert c.converse(modelId=MODEL, messages=[user("hi")])["stopReason"] == "end_turn"


@pytest.mark.parametrize(
    ("key", "secret", "code"),
    [
        (fake_module.ACCESS_KEY, "wrong", "InvalidSignatureException"),
        ("AKIAUNKNOWN", "x", "UnrecognizedClientException"),
    ],
)
def test_bad_signatures_are_refused(fake: FakeServer, key: str, secret: str, code: str) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client(fake, key, secret).converse(modelId=MODEL, messages=[user("hi")])
    assert info.value.response["Error"]["Code"] == code
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_scripted_errors_are_botos_exceptions(fake: FakeServer) -> None:
    c = client(fake)
    fake.enqueue({"error": "ThrottlingException", "message": "Too many requests, please wait before trying again."})
    with pytest.raises(c.exceptions.ThrottlingException):
        c.converse(modelId=MODEL, messages=[user("hi")])
    with pytest.raises(c.exceptions.ValidationException, match="start with a user message"):
        c.converse(modelId=MODEL, messages=[{"role": "assistant", "content": [{"text": "hi"}]}])


def test_stream_exception_event(fake: FakeServer) -> None:
    c = client(fake)
    fake.enqueue({"stream_exception": "throttlingException", "after_events": 2})
    stream = c.converse_stream(modelId=MODEL, messages=[user("a b c d")])["stream"]
    with pytest.raises(botocore.exceptions.EventStreamError, match="throttlingException"):
        list(stream)


def test_invoke_with_response_stream(fake: FakeServer) -> None:
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100,
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "computer_20250124", "name": "computer", "display_width_px": 1024,
                       "display_height_px": 768}]}  # fmt: skip
    reply = client(fake).invoke_model_with_response_stream(modelId=MODEL, body=json.dumps(body))
    events = [json.loads(e["chunk"]["bytes"]) for e in reply["body"]]
    assert events[0]["type"] == "message_start"
    assert events[1]["content_block"]["name"] == "computer"


def test_count_tokens(fake: FakeServer) -> None:
    reply = client(fake).count_tokens(modelId=MODEL, input={"converse": {"messages": [user("hello")]}})
    assert reply["inputTokens"] > 0


def test_count_tokens_of_an_invoke_body(fake: FakeServer) -> None:
    body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()  # fmt: skip
    assert client(fake).count_tokens(modelId=MODEL, input={"invokeModel": {"body": body}})["inputTokens"] == 1  # "hi"


def test_sts_issues_role_credentials_boto3_parses_and_bedrock_accepts(fake: FakeServer) -> None:
    sts = boto3.client("sts", region_name="us-east-1", endpoint_url=fake.root, aws_access_key_id=fake_module.ACCESS_KEY,
                       aws_secret_access_key=fake_module.SECRET_KEY)  # fmt: skip
    creds = sts.assume_role(RoleArn=aws_sts.ROLE_ARN, RoleSessionName="sess")["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA") and creds["Expiration"].tzinfo is not None
    reply = client(fake, creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]).converse(
        modelId=MODEL, messages=[user("as a role")]
    )
    assert reply["stopReason"] == "end_turn"
    with pytest.raises(botocore.exceptions.ClientError) as denied:
        sts.assume_role(RoleArn="arn:aws:iam::123456789012:role/other", RoleSessionName="sess")
    assert denied.value.response["Error"]["Code"] == "AccessDenied"

    unsigned = boto3.client("sts", region_name="us-east-1", endpoint_url=fake.root,
                            config=botocore.config.Config(signature_version=botocore.UNSIGNED))  # fmt: skip
    web = unsigned.assume_role_with_web_identity(
        RoleArn=aws_sts.ROLE_ARN, RoleSessionName="pod", WebIdentityToken=aws_sts.WEB_IDENTITY_TOKEN
    )
    assert web["Credentials"]["AccessKeyId"].startswith("ASIA") and web["SubjectFromWebIdentityToken"]
    with pytest.raises(botocore.exceptions.ClientError) as bad:
        unsigned.assume_role_with_web_identity(
            RoleArn=aws_sts.ROLE_ARN, RoleSessionName="pod", WebIdentityToken="not-the-token"
        )
    assert bad.value.response["Error"]["Code"] == "InvalidIdentityToken"


def test_converse_prompt_cache_points(fake: FakeServer) -> None:
    point = {"cachePoint": {"type": "default"}}
    system = [{"text": "Follow the house rules carefully. " * 250}, point]  # 1250 words: 1252 tokens in its JSON
    first = client(fake).converse(modelId=MODEL, messages=[user("hello")], system=system)["usage"]
    assert (first["cacheWriteInputTokens"], first["cacheReadInputTokens"]) == (1252, 0)
    assert first["totalTokens"] == first["inputTokens"] + 1252 + first["outputTokens"]
    events = client(fake).converse_stream(modelId=MODEL, messages=[user("again")], system=system)["stream"]
    usage = next(e["metadata"]["usage"] for e in events if "metadata" in e)
    assert (usage["cacheReadInputTokens"], usage["cacheWriteInputTokens"]) == (1252, 0)
    plain = client(fake).converse(modelId=MODEL, messages=[user("hello")], system=system[:1])["usage"]
    assert "cacheReadInputTokens" not in plain  # no cache point, no caching
    with pytest.raises(botocore.exceptions.ClientError, match="maximum of 4"):
        client(fake).converse(modelId=MODEL, messages=[user("hi")], system=[{"text": "a"}, point] * 5)
    with pytest.raises(botocore.exceptions.ClientError, match="prompt caching"):
        client(fake).converse(modelId="meta.llama3-3-70b-instruct-v1:0", messages=[user("hi")], system=system)


def test_invoke_prompt_cache_control(fake: FakeServer) -> None:
    rules = [
        {"type": "text", "text": "Follow the house rules carefully. " * 250, "cache_control": {"type": "ephemeral"}}
    ]
    body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10, "system": rules,
                       "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    usages = [json.loads(client(fake).invoke_model(modelId=MODEL, body=body)["body"].read())["usage"] for _ in "ab"]
    assert [(u["cache_creation_input_tokens"], u["cache_read_input_tokens"], u["input_tokens"]) for u in usages] == [
        (1250, 0, 1), (0, 1250, 1)]  # fmt: skip
