"""Mid-stream fallback through the proxy: a stream that breaks after its output started goes
on at the fallback (another account, another provider), and the openai SDK's own stream
accumulator reads one well-formed response, equal to the stored one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from tests.e2e.proxy_process import start_proxy, write_config
from tests.e2e.test_bedrock import CLAUDE, KEYS
from tests.fakes.process import FakeServer

TEXT = "one two three four five six seven eight"
MORE = "and the rest."
MODELS = {
    "openai": "openai/gpt-4o",
    "anthropic": "anthropic/claude-sonnet-4-5",
    "gemini": "gemini/gemini-2.0-flash",
    "chat": "groq/llama-3.3-70b",
    "bedrock": f"bedrock/{CLAUDE}",
}
# frames before the first two text deltas are out, per protocol
STARTED = {"openai": 6, "anthropic": 4, "gemini": 2, "chat": 3, "bedrock": 3}


def group(name: str, provider: str, fake: FakeServer, **params: Any) -> dict[str, Any]:
    litellm_params = {"model": MODELS[provider], "api_key": "test-key", "api_base": fake.url, **params}
    if provider == "bedrock":  # signed with AWS keys, at the runtime endpoint's root
        del litellm_params["api_key"]
        litellm_params.update(KEYS, api_base=fake.root)
    return {"model_name": name, "litellm_params": litellm_params, "model_info": {"id": name}}


@pytest.fixture
def fakes(
    openai_fake: FakeServer,
    openai_fake_b: FakeServer,
    anthropic_fake: FakeServer,
    gemini_fake: FakeServer,
    chat_fake: FakeServer,
    bedrock_fake: FakeServer,
) -> dict[str, FakeServer]:
    every = {"openai": openai_fake, "openai_b": openai_fake_b, "anthropic": anthropic_fake, "gemini": gemini_fake,
             "chat": chat_fake, "bedrock": bedrock_fake}  # fmt: skip
    for fake in every.values():
        fake.reset()
    return every


def streamed(client: OpenAI, **params: Any) -> tuple[list[Any], Any]:
    with client.responses.stream(**params) as stream:
        events = list(stream)  # the SDK's accumulator checks every index and type as it goes
        return events, stream.get_final_response()


def plain(response: Any) -> Any:
    """A response as JSON, without the SDK's own `parsed` fields."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "parsed"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(response.model_dump(mode="json"))


def check_one_stream(events: list[Any]) -> None:
    types = [e.type for e in events]
    assert types[0] == "response.created" and types.count("response.created") == 1
    assert types.count("response.in_progress") <= 1
    terminal = [t for t in types if t in ("response.completed", "response.failed", "response.incomplete", "error")]
    assert terminal == [types[-1]]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    ids = {e.response.id for e in events if hasattr(e, "response")}
    assert len(ids) == 1
    added = [e.output_index for e in events if e.type == "response.output_item.added"]
    assert added == list(range(len(added)))  # each item opened once, in order


def run_pair(
    fakes: dict[str, FakeServer], tmp_path: Path, first: str, then: str, script: dict[str, Any], **params: Any
) -> tuple[list[Any], Any]:
    second_fake = fakes["openai_b"] if (first, then) == ("openai", "openai") else fakes[then]
    config = {
        "model_list": [group("primary", first, fakes[first], **params), group("backup", then, second_fake)],
        "router_settings": {"fallbacks": [{"primary": ["backup"]}]},
    }
    fakes[first].enqueue({"text": TEXT, **script})
    second_fake.enqueue({"text": MORE})
    proxy = start_proxy("--config", str(write_config(config, tmp_path)))
    client = OpenAI(base_url=proxy.url, api_key="k", max_retries=0)
    try:
        events, final = streamed(client, model="primary", input="count")
        stored = client.responses.retrieve(final.id)
    finally:
        proxy.stop()
    check_one_stream(events)
    assert plain(stored) == plain(final)
    return events, final


@pytest.mark.parametrize(
    ("first", "then"),
    [
        ("openai", "openai"),
        ("openai", "anthropic"),
        ("anthropic", "openai"),
        ("anthropic", "anthropic"),
        ("openai", "gemini"),
        ("gemini", "anthropic"),
        ("chat", "openai"),
        ("anthropic", "chat"),
        ("bedrock", "openai"),
        ("openai", "bedrock"),
    ],
)
def test_a_stream_cut_mid_text_goes_on_at_the_fallback_as_one_message(
    fakes: dict[str, FakeServer], tmp_path: Path, first: str, then: str
) -> None:
    script = {"drop_after_events": STARTED[first]}
    events, final = run_pair(fakes, tmp_path, first, then, script)
    assert final.status == "completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert final.output_text == deltas and deltas.endswith(MORE)
    shown = deltas.removesuffix(MORE)
    assert shown and TEXT.startswith(shown)
    (message,) = final.output  # continued in place: one message, one part
    assert len(message.content) == 1 and message.id == events[2].item.id
    # the fallback was asked to go on after what the client had already read
    second = (fakes["openai_b"] if (first, then) == ("openai", "openai") else fakes[then]).requests()[-1]["body"]
    last = (second.get("messages") or second.get("input") or second.get("contents"))[-1]
    content = last.get("content", last.get("parts"))
    text = content if isinstance(content, str) else content[-1]["text"]
    assert last["role"] in ("assistant", "model") and text == shown
    assert final.usage is not None and final.usage.output_tokens > 0


@pytest.mark.parametrize(
    "script",
    [
        {"fail_after_events": STARTED["openai"]},  # an error event
        {"truncate_after_events": STARTED["openai"]},  # a clean end without a terminal event
        {"hang_after_events": STARTED["openai"]},  # silent past stream_timeout
        {"raw_frame_after_events": STARTED["openai"]},  # a frame that is not JSON
    ],
    ids=["error-event", "no-terminal", "stall", "garbage"],
)
def test_every_kind_of_break_is_continued(fakes: dict[str, FakeServer], tmp_path: Path, script: dict) -> None:
    final = run_pair(fakes, tmp_path, "openai", "anthropic", script, stream_timeout=1)[1]
    assert final.status == "completed" and final.output_text.endswith(MORE)
    assert len(final.output_text) > len(MORE)


def test_an_anthropic_overload_mid_stream_goes_on_at_openai(fakes: dict[str, FakeServer], tmp_path: Path) -> None:
    final = run_pair(fakes, tmp_path, "anthropic", "openai", {"overloaded_after_events": 4})[1]
    assert final.status == "completed" and final.output_text.endswith(MORE)
    assert final.model == "gpt-4o"


def test_when_the_fallback_breaks_too_the_client_gets_one_failed_stream(
    fakes: dict[str, FakeServer], tmp_path: Path
) -> None:
    fakes["anthropic"].enqueue({"drop_after_events": 3})
    config_script = {"drop_after_events": STARTED["openai"]}
    fakes["openai"].enqueue({"text": TEXT, **config_script})
    config = {
        "model_list": [group("primary", "openai", fakes["openai"]), group("backup", "anthropic", fakes["anthropic"])],
        "router_settings": {"fallbacks": [{"primary": ["backup"]}]},
    }
    with start_proxy("--config", str(write_config(config, tmp_path))) as proxy:
        client = OpenAI(base_url=proxy.url, api_key="k", max_retries=0)
        with client.responses.stream(model="primary", input="count") as stream:
            events = list(stream)
        check_one_stream(events)
        failed = events[-1].response
        assert failed.status == "failed" and failed.output[0].status == "incomplete"
        text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        assert failed.output[0].content[0].text == text and text
        assert plain(client.responses.retrieve(failed.id)) == plain(failed)


def test_mid_stream_fallback_can_be_switched_off(fakes: dict[str, FakeServer], tmp_path: Path) -> None:
    fakes["openai"].enqueue({"text": TEXT, "drop_after_events": STARTED["openai"]})
    config = {
        "model_list": [group("primary", "openai", fakes["openai"]), group("backup", "anthropic", fakes["anthropic"])],
        "router_settings": {"fallbacks": [{"primary": ["backup"]}], "mid_stream_fallback": False},
    }
    with start_proxy("--config", str(write_config(config, tmp_path))) as proxy:
        client = OpenAI(base_url=proxy.url, api_key="k", max_retries=0)
        with client.responses.stream(model="primary", input="count") as stream:
            events = list(stream)
    assert events[-1].type == "response.failed"
    assert fakes["anthropic"].requests() == []
