"""Bedrock through the proxy, driven by the official openai SDK, against the fake Bedrock runtime (which checks
every SigV4 signature and frames its streams as AWS event-stream)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from urllib.parse import parse_qs

import openai
import orjson
import pytest
from openai import OpenAI

from tests.conftest import SDK
from tests.e2e.proxy_process import ProxyProcess, start_proxy, write_config
from tests.e2e.waits import finished
from tests.fakes import anthropic_upstream
from tests.fakes import aws_sts as sts
from tests.fakes import bedrock_upstream as aws
from tests.fakes.process import FakeServer

CLAUDE = "anthropic.claude-sonnet-4-5-20250929-v1:0"
ARN = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6"
TOOL = {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}
KEYS = {"aws_access_key_id": aws.ACCESS_KEY, "aws_secret_access_key": aws.SECRET_KEY, "aws_region_name": "us-east-1"}


@pytest.fixture(scope="module")
def fake(bedrock_fake: FakeServer) -> FakeServer:
    return bedrock_fake


@pytest.fixture(scope="module")
def proxy(fake: FakeServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    directory = tmp_path_factory.mktemp("bedrock")
    credentials = directory / "credentials"
    credentials.write_text(
        f"[relay]\naws_access_key_id = {aws.SESSION_ACCESS_KEY}\n"
        f"aws_secret_access_key = {aws.SESSION_SECRET_KEY}\naws_session_token = {aws.SESSION_TOKEN}\n"
    )
    session = {"aws_access_key_id": aws.SESSION_ACCESS_KEY, "aws_secret_access_key": aws.SESSION_SECRET_KEY,
               "aws_session_token": aws.SESSION_TOKEN}  # fmt: skip

    def entry(name: str, model: str, **params: str) -> dict:
        return {"model_name": name, "litellm_params": {"model": model, **params}}

    model_list = [
        entry("claude", f"bedrock/{CLAUDE}", api_base=fake.root, **KEYS),
        entry("profile-arn", f"bedrock/converse/{ARN}", aws_bedrock_runtime_endpoint=fake.root, **session),
        entry("from-env", "bedrock/amazon.nova-pro-v1:0", api_base=fake.root),
        entry("from-profile", "bedrock/amazon.nova-pro-v1:0", api_base=fake.root, aws_profile_name="relay"),
        entry("wrong-secret", f"bedrock/{CLAUDE}", api_base=fake.root, **{**KEYS, "aws_secret_access_key": "nope"}),
        entry("as-role", f"bedrock/{CLAUDE}", api_base=fake.root, aws_role_name=sts.ROLE_ARN,
              aws_session_name="relay-test", aws_sts_endpoint=fake.root, **KEYS),
        entry("web-identity", f"bedrock/{CLAUDE}", api_base=fake.root, aws_role_name=sts.ROLE_ARN,
              aws_web_identity_token=sts.WEB_IDENTITY_TOKEN, aws_sts_endpoint=fake.root),
        entry("other-role", f"bedrock/{CLAUDE}", api_base=fake.root, aws_role_name=sts.ROLE_ARN + "-not",
              aws_sts_endpoint=fake.root, **KEYS),
    ]  # fmt: skip
    env = {"AWS_ACCESS_KEY_ID": aws.ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": aws.SECRET_KEY, "AWS_REGION": "us-west-2",
           "AWS_SHARED_CREDENTIALS_FILE": str(credentials), "AWS_CONFIG_FILE": str(directory / "none"),
           "AWS_EC2_METADATA_DISABLED": "true"}  # fmt: skip
    config = write_config({"model_list": model_list}, directory)
    with start_proxy("--config", str(config), env=env) as p:
        yield p


@pytest.fixture
def client(proxy: ProxyProcess, fake: FakeServer) -> OpenAI:
    fake.reset()
    return OpenAI(base_url=proxy.url, api_key="k", max_retries=0)


def test_text_and_stream_agree_and_are_stored(client: OpenAI, fake: FakeServer) -> None:
    plain = client.responses.create(model="claude", input="same answer", instructions="Be brief.")
    with client.responses.stream(model="claude", input="same answer") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert plain.output_text == final.output_text == "".join(deltas) == "Echo (turns=1): same answer"
    assert plain.usage is not None and plain.usage.input_tokens > 0
    paths = [r["path"] for r in fake.requests()]
    assert paths == [f"/model/{CLAUDE}/converse", f"/model/{CLAUDE}/converse-stream"]
    assert fake.requests()[0]["body"]["system"] == [{"text": "Be brief."}]
    assert client.responses.retrieve(final.id).output_text == final.output_text
    client.responses.delete(final.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(final.id)


def test_an_inference_profile_arn_with_session_credentials(client: OpenAI, fake: FakeServer) -> None:
    r = client.responses.create(model="profile-arn", input="hello")
    assert r.output_text == "Echo (turns=1): hello"
    seen = fake.requests()[0]
    assert seen["model"] == ARN and seen["headers"]["x-amz-security-token"] == aws.SESSION_TOKEN


@pytest.mark.parametrize("model", ["from-env", "from-profile"])
def test_credentials_from_the_chain(client: OpenAI, fake: FakeServer, model: str) -> None:
    assert client.responses.create(model=model, input="hi").output_text == "Echo (turns=1): hi"
    headers = fake.requests()[0]["headers"]
    # AWS_REGION picks the region the request is signed for; the profile holds session credentials
    assert "/us-west-2/bedrock/aws4_request" in headers["authorization"]
    assert headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={aws.ACCESS_KEY}/") == (
        model == "from-env"
    )
    assert headers.get("x-amz-security-token") == (aws.SESSION_TOKEN if model == "from-profile" else None)


@pytest.mark.parametrize("model", ["as-role", "web-identity"])
def test_a_role_assumed_through_sts_signs_the_calls(client: OpenAI, fake: FakeServer, model: str) -> None:
    for n in range(2):
        assert client.responses.create(model=model, input=f"hi {n}").output_text == f"Echo (turns=1): hi {n}"
    assumed, *calls = fake.requests()
    assert assumed["model"] == "sts" and len(calls) == 2  # assumed once, its credentials kept
    form = parse_qs(assumed["raw_body"])
    assert form["Action"] == ["AssumeRole" if model == "as-role" else "AssumeRoleWithWebIdentity"]
    assert form["RoleArn"] == [sts.ROLE_ARN] and form["RoleSessionName"] == [
        "relay-test" if model == "as-role" else "llmrelay"
    ]
    assert ("authorization" in assumed["headers"]) == (model == "as-role")  # the web-identity call is unsigned
    for call in calls:  # signed by the role's temporary credentials, not the base keys
        assert call["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 Credential=ASIA")
        assert call["headers"]["x-amz-security-token"]


def test_a_role_sts_refuses_is_a_clear_401(client: OpenAI) -> None:
    with pytest.raises(openai.AuthenticationError) as refused:
        client.responses.create(model="other-role", input="hi")
    assert "assume role" in refused.value.message and "Not authorized" in refused.value.message


def test_tool_round_trip_with_previous_response_id(client: OpenAI, fake: FakeServer) -> None:
    first = client.responses.create(model="claude", input="capital of France", tools=[TOOL], tool_choice="required")
    call = first.output[-1]
    assert call.type == "function_call" and json.loads(call.arguments) == {"q": "capital of France"}
    assert fake.requests()[0]["body"]["toolConfig"]["toolChoice"] == {"any": {}}
    with client.responses.stream(
        model="claude", tools=[TOOL], previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Paris"}],
    ) as stream:  # fmt: skip
        final = stream.get_final_response()
    assert final.output_text == "Echo (turns=1): tool said Paris"
    replayed = fake.requests()[1]["body"]["messages"]
    assert [m["role"] for m in replayed] == ["user", "assistant", "user"]
    assert replayed[2]["content"][0]["toolResult"]["toolUseId"] == call.call_id


def test_reasoning_is_replayed_with_its_signature(client: OpenAI, fake: FakeServer) -> None:
    with client.responses.stream(model="claude", input="weather", tools=[TOOL], reasoning={"effort": "low"}) as s:
        first = s.get_final_response()
    reasoning, call = first.output[0], first.output[-1]
    assert reasoning.type == "reasoning" and reasoning.encrypted_content.startswith("bedrock:")
    assert reasoning.summary[0].text == "Thinking about: weather"
    thinking = fake.requests()[0]["body"]["additionalModelRequestFields"]["thinking"]
    assert thinking == {"type": "enabled", "budget_tokens": 2048}
    # The fake refuses an assistant tool turn that does not start with its correctly signed reasoning.
    second = client.responses.create(
        model="claude", tools=[TOOL], reasoning={"effort": "low"}, previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "rain"}],
    )  # fmt: skip
    assert second.output_text == "Echo (turns=1): tool said rain"
    assistant = fake.requests()[1]["body"]["messages"][1]["content"]
    assert "reasoningContent" in assistant[0] and "toolUse" in assistant[1]


@pytest.mark.parametrize(
    ("error", "status", "cls"),
    [
        ("ThrottlingException", 429, openai.RateLimitError),
        ("ValidationException", 400, openai.BadRequestError),
        ("AccessDeniedException", 403, openai.PermissionDeniedError),
        ("ResourceNotFoundException", 404, openai.NotFoundError),
        ("ModelTimeoutException", 504, openai.InternalServerError),
        ("ServiceUnavailableException", 503, openai.InternalServerError),
    ],
)
def test_bedrock_errors_map_to_openai_statuses(
    client: OpenAI, fake: FakeServer, error: str, status: int, cls: type[openai.APIStatusError]
) -> None:
    fake.enqueue({"error": error, "message": "scripted"})
    with pytest.raises(cls) as info:
        client.responses.create(model="claude", input="x")
    assert info.value.status_code == status
    assert info.value.body["message"] == f"{error}: scripted"


def test_a_refused_signature_is_an_upstream_authentication_error(client: OpenAI) -> None:
    with pytest.raises(openai.AuthenticationError) as info:
        client.responses.create(model="wrong-secret", input="x")
    assert info.value.body["type"] == "upstream_authentication_error"
    assert "InvalidSignatureException" in info.value.message


def test_an_exception_event_mid_stream_fails_the_response(client: OpenAI, fake: FakeServer) -> None:
    fake.enqueue({"stream_exception": "throttlingException", "after_events": 3, "message": "slow down"})
    events = list(client.responses.create(model="claude", input="a b c d e", stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.failed"
    assert events[-1].response.error.code == "rate_limit_exceeded"
    assert "slow down" in events[-1].response.error.message


def test_guardrail_intervention_is_incomplete_content_filter(client: OpenAI, fake: FakeServer) -> None:
    fake.enqueue({"stop_reason": "guardrail_intervened", "text": "Sorry, the model cannot answer this."})
    r = client.responses.create(model="claude", input="x")
    assert r.status == "incomplete" and r.incomplete_details.reason == "content_filter"


def test_background_response_runs_to_completion(client: OpenAI) -> None:
    r = client.responses.create(model="claude", input="in the background", background=True)
    assert r.status in ("queued", "in_progress")
    r = finished(lambda: client.responses.retrieve(r.id))
    assert r.status == "completed" and r.output_text == "Echo (turns=1): in the background"


def test_computer_use_goes_through_invoke_with_claudes_own_body(client: OpenAI, fake: FakeServer) -> None:
    tool = {"type": "computer_use_preview", "display_width": 1024, "display_height": 768, "environment": "browser"}
    with client.responses.stream(model="claude", input="open the page", tools=[tool]) as stream:
        first = stream.get_final_response()
    call = first.output[-1]
    assert call.type == "computer_call" and call.action.type == "screenshot"
    seen = fake.requests()[0]
    assert seen["path"] == f"/model/{CLAUDE}/invoke-with-response-stream"
    assert seen["body"]["anthropic_version"] == "bedrock-2023-05-31" and "model" not in seen["body"]
    shot = {"type": "computer_screenshot", "image_url": "data:image/png;base64,iVBORw0KGgo="}
    output = {"type": "computer_call_output", "call_id": call.call_id, "output": shot}
    r = client.responses.create(model="claude", tools=[tool], previous_response_id=first.id, input=[output])
    assert r.output_text == "Echo (invoke): screenshot received"
    assert fake.requests()[1]["path"] == f"/model/{CLAUDE}/invoke"


def test_input_token_count_uses_bedrocks_counter(client: OpenAI, fake: FakeServer) -> None:
    count = client.responses.input_tokens.count(model="claude", input="count these words please")
    assert count.input_tokens > 0
    assert fake.requests()[0]["path"] == f"/model/{CLAUDE}/count-tokens"


def test_a_stored_conversation_moves_from_bedrock_to_another_deployment(client: OpenAI) -> None:
    first = client.responses.create(model="claude", input="turn 1")
    second = client.responses.create(model="profile-arn", input="turn 2", previous_response_id=first.id)
    assert second.output_text == "Echo (turns=2): turn 2"


def test_bytes_that_are_not_event_stream_fail_the_response(client: OpenAI, fake: FakeServer) -> None:
    fake.enqueue({"raw_frame_after_events": 2})  # SSE garbage where an event-stream message belongs
    events = list(client.responses.create(model="claude", input="a b c d e", stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.failed"


def test_a_stream_cut_before_its_end_fails_the_response(client: OpenAI, fake: FakeServer) -> None:
    fake.enqueue({"truncate_after_events": 3})
    events = list(client.responses.create(model="claude", input="a b c d e", stream=True))
    assert events[-1].type == "response.failed"
    assert "closed the stream" in events[-1].response.error.message


def test_computer_use_input_is_counted_as_claudes_own_body(client: OpenAI, fake: FakeServer) -> None:
    tool = {"type": "computer_use_preview", "display_width": 1024, "display_height": 768, "environment": "browser"}
    count = client.responses.input_tokens.count(model="claude", input="open the page", tools=[tool])
    claude = orjson.loads(base64.b64decode(fake.requests()[0]["body"]["input"]["invokeModel"]["body"]))
    assert count.input_tokens == anthropic_upstream.count_input_tokens(claude) > 0  # counted as Claude's body


async def test_the_sdk_takes_aws_keys_per_call(sdk: SDK, fake: FakeServer) -> None:
    fake.reset()
    params = {"model": f"bedrock/{CLAUDE}", "api_base": fake.root, **KEYS}
    r = await sdk.create(**params, input="from the sdk")
    assert r.output_text == "Echo (turns=1): from the sdk"
    events = await sdk.stream(**params, input="streamed", previous_response_id=r.id)
    assert events[-1].response.output_text == "Echo (turns=2): streamed"
    assert all("Credential=" + aws.ACCESS_KEY in q["headers"]["authorization"] for q in fake.requests())


def test_compaction_summarises_with_bedrock_and_expands_back(client: OpenAI, fake: FakeServer) -> None:
    first = client.responses.create(model="claude", input="my name is Ada")
    compacted = client.responses.compact(model="claude", previous_response_id=first.id)
    assert [i.type for i in compacted.output][-1] == "compaction"
    assert "Summarize the conversation" in fake.requests()[-1]["body"]["system"][0]["text"]
    items = [i.model_dump(exclude_none=True, warnings=False) for i in compacted.output]
    after = client.responses.create(model="claude", input=[*items, {"role": "user", "content": "who am I?"}])
    assert after.output_text.endswith("who am I?")
    sent = fake.requests()[-1]["body"]
    assert "Summary of the earlier conversation" in " ".join(s["text"] for s in sent["system"])
    # the kept user message and the new one are one user turn: Converse alternates roles
    assert sent["messages"] == [{"role": "user", "content": [{"text": "my name is Ada"}, {"text": "who am I?"}]}]
