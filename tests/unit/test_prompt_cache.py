"""Automatic prompt-cache marks (providers/prompt_cache.py) on each wire protocol that needs them,
and the usage they lead to: where the marks go, at most 4, the client's own left alone, off."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest

from llmrelay.items import normalize
from llmrelay.providers import prompt_cache
from llmrelay.providers.anthropic import Anthropic
from llmrelay.providers.base import Call
from llmrelay.providers.bedrock import Bedrock
from llmrelay.providers.registry import make_deployment
from llmrelay.providers.vertex import VertexAnthropic

LONG = "Follow the house rules. " * 100  # ~2.4 KB: over MIN_BYTES on its own
TOOL = {"type": "function", "name": "shell", "description": "Run a command.",
        "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}}  # fmt: skip
BIG_TOOL = {**TOOL, "description": "Run a shell command in the sandbox and return its output. " * 20}
HISTORY = [
    {"role": "user", "content": "first question"},
    {"type": "function_call", "call_id": "call_1", "name": "shell", "arguments": '{"cmd": "ls"}'},
    {"type": "function_call_output", "call_id": "call_1", "output": "a.txt b.txt"},
    {"role": "assistant", "content": [{"type": "output_text", "text": "Two files."}]},
    {"role": "user", "content": "second question"},
]
KEYS = {"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "secret", "aws_region_name": "us-east-1"}
EPHEMERAL = {"type": "ephemeral"}
POINT = {"cachePoint": {"type": "default"}}


def call(model: str, extra: dict[str, Any] | None = None, **params: Any) -> Call:
    counter = itertools.count()
    params.setdefault("input", HISTORY)
    options = {k: params.pop(k) for k in ("extra_body", "prompt_caching", "prompt_caching_default") if k in params}
    dep_extra = dict(KEYS) if model.startswith("bedrock/") else {}
    cloud = {"vertex_project": "p", "vertex_location": "us-east5"} if model.startswith("vertex_ai/") else None
    return Call(
        id="resp_1",
        params={"model": model, **params},
        deployment=make_deployment(
            model,
            api_key="k",
            api_base="http://upstream.test",
            extra={**dep_extra, **(extra or {})},
            cloud_settings=cloud,
        ),
        input_items=normalize(params["input"], lambda p: f"{p}_{next(counter)}"),
        created_at=0,
        new_id=lambda p: f"{p}_{next(counter)}",
        **options,
    )


def sent(adapter: Any, c: Call) -> dict[str, Any]:
    return orjson.loads(adapter.build_request(c).body or b"{}")


def cache_controls(body: Any) -> list[str]:
    """Where the cache_control marks are, as paths."""
    out: list[str] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                out.append(path) if k == "cache_control" else walk(v, f"{path}.{k}" if path else k)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{path}[{i}]")

    walk(body, "")
    return sorted(out)


def cache_points(body: Any) -> list[str]:
    groups = {"toolConfig.tools": (body.get("toolConfig") or {}).get("tools"), "system": body.get("system")}
    groups |= {f"messages[{i}]": m["content"] for i, m in enumerate(body.get("messages") or [])}
    return [f"{name}[{j}]" for name, blocks in groups.items() for j, b in enumerate(blocks or []) if "cachePoint" in b]


# -- Claude's Messages body ------------------------------------------------------------------


def test_anthropic_marks_tools_system_earlier_turns_and_the_newest_message() -> None:
    body = sent(Anthropic(), call("anthropic/claude-sonnet-4-5", instructions=LONG, tools=[BIG_TOOL]))
    assert cache_controls(body) == ["messages[3].content[0]", "messages[4].content[0]", "system[0]", "tools[0]"]
    assert body["system"] == [{"type": "text", "text": LONG, "cache_control": EPHEMERAL}]
    assert body["messages"][3] == {"role": "assistant", "content": [
        {"type": "text", "text": "Two files.", "cache_control": EPHEMERAL}]}  # fmt: skip
    assert len(cache_controls(body)) <= prompt_cache.MAX_MARKS


def test_a_short_prefix_gets_no_mark_and_a_long_history_marks_only_where_it_is_long_enough() -> None:
    short = sent(Anthropic(), call("anthropic/claude-sonnet-4-5", instructions="Be brief.", tools=[TOOL]))
    assert cache_controls(short) == [] and short["system"] == "Be brief."
    # Tools and system are short; the conversation grows past the threshold in its earlier turns.
    history = [{"role": "user", "content": LONG}, {"role": "assistant", "content": "ok"}, *HISTORY]
    body = sent(Anthropic(), call("anthropic/claude-sonnet-4-5", instructions="Be brief.", input=history))
    assert cache_controls(body) == ["messages[5].content[0]", "messages[6].content[0]"]
    assert body["system"] == "Be brief."


def test_the_first_turn_marks_tools_system_and_its_message() -> None:
    body = sent(Anthropic(), call("anthropic/claude-sonnet-4-5", instructions=LONG, input="hi"))
    assert cache_controls(body) == ["messages[0].content[0]", "system[0]"]


def test_thinking_blocks_are_never_marked() -> None:
    signed = {"type": "reasoning", "summary": [{"type": "summary_text", "text": "hm"}],
              "encrypted_content": "anthropic:sig"}  # fmt: skip
    history = [{"role": "user", "content": LONG}, signed,
               {"type": "function_call", "call_id": "c", "name": "shell", "arguments": "{}"},
               {"type": "function_call_output", "call_id": "c", "output": "done"}]  # fmt: skip
    body = sent(Anthropic(), call("anthropic/claude-sonnet-4-5", input=history, tools=[TOOL]))
    assert cache_controls(body) == ["messages[1].content[1]", "messages[2].content[0]"]
    assert body["messages"][1]["content"][0]["type"] == "thinking"


@pytest.mark.parametrize(
    "extra_body",
    [
        {"cache_control": {"type": "ephemeral"}},
        {"system": [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]},
        {"messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "x", "content": [
                {"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}]}]}]},
    ],
)  # fmt: skip
def test_a_request_with_marks_of_its_own_is_left_alone(extra_body: dict[str, Any]) -> None:
    c = call("anthropic/claude-sonnet-4-5", instructions=LONG, tools=[TOOL], extra_body=extra_body)
    assert len(cache_controls(sent(Anthropic(), c))) == 1


@pytest.mark.parametrize(
    ("options", "extra", "marked"),
    [
        ({"prompt_caching": False}, {}, False),
        ({}, {"prompt_caching": False}, False),
        ({"prompt_caching_default": False}, {}, False),
        ({"prompt_caching_default": False}, {"prompt_caching": True}, True),  # the deployment over the default
        ({"prompt_caching": True}, {"prompt_caching": False}, True),  # the call over the deployment
    ],
)
def test_off_switch(options: dict[str, Any], extra: dict[str, Any], marked: bool) -> None:
    c = call("anthropic/claude-sonnet-4-5", extra=extra, instructions=LONG, tools=[TOOL], **options)
    assert bool(cache_controls(sent(Anthropic(), c))) is marked
    c = call("bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0", extra=extra, instructions=LONG, **options)
    assert bool(cache_points(sent(Bedrock(), c))) is marked


def test_prompt_cache_key_is_top_level_cache_control_only_when_automatic_caching_is_off() -> None:
    on = sent(Anthropic(), call("anthropic/claude-sonnet-4-5", instructions=LONG, prompt_cache_key="conv-1"))
    assert "cache_control" not in on
    assert cache_controls(on) == ["messages[3].content[0]", "messages[4].content[0]", "system[0]"]
    off = sent(Anthropic(), call("anthropic/claude-sonnet-4-5", prompt_cache_key="conv-1", prompt_caching=False))
    assert cache_controls(off) == [""] and off["cache_control"] == EPHEMERAL


def test_vertex_claude_is_marked_like_anthropic() -> None:
    body = sent(VertexAnthropic(), call("vertex_ai/claude-sonnet-4-5@20250929", instructions=LONG, tools=[BIG_TOOL]))
    assert body["anthropic_version"] == "vertex-2023-10-16" and "model" not in body
    assert cache_controls(body) == ["messages[3].content[0]", "messages[4].content[0]", "system[0]", "tools[0]"]


def test_bedrock_invoke_marks_claudes_body_for_models_that_cache() -> None:
    computer = {"type": "computer_use_preview", "display_width": 1024, "display_height": 768, "environment": "linux"}
    body = sent(Bedrock(), call("bedrock/invoke/anthropic.claude-sonnet-4-5-20250929-v1:0", instructions=LONG,
                                tools=[computer]))  # fmt: skip
    assert body["anthropic_version"] == "bedrock-2023-05-31"
    # the computer tool alone is too short to mark
    assert cache_controls(body) == ["messages[3].content[0]", "messages[4].content[0]", "system[0]"]
    old = sent(Bedrock(), call("bedrock/invoke/anthropic.claude-3-sonnet-20240229-v1:0", instructions=LONG))
    assert cache_controls(old) == []


# -- Bedrock Converse ------------------------------------------------------------------------


def test_converse_cache_points_after_tools_system_earlier_turns_and_the_newest_message() -> None:
    body = sent(Bedrock(), call("bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0", instructions=LONG,
                                tools=[BIG_TOOL]))  # fmt: skip
    assert cache_points(body) == ["toolConfig.tools[1]", "system[1]", "messages[3][1]", "messages[4][1]"]
    assert body["toolConfig"]["tools"][1] == body["system"][1] == POINT
    assert body["messages"][3]["content"] == [{"text": "Two files."}, POINT]


def test_converse_nova_caches_no_tools_and_other_models_get_no_cache_points() -> None:
    nova = sent(Bedrock(), call("bedrock/amazon.nova-pro-v1:0", instructions=LONG, tools=[BIG_TOOL]))
    assert cache_points(nova) == ["system[1]", "messages[3][1]", "messages[4][1]"]
    for model in ("bedrock/meta.llama3-3-70b-instruct-v1:0", "bedrock/anthropic.claude-3-5-sonnet-20241022-v2:0"):
        assert cache_points(sent(Bedrock(), call(model, instructions=LONG, tools=[BIG_TOOL]))) == []


def test_converse_short_prefix_and_client_cache_points_are_left_alone() -> None:
    short = sent(Bedrock(), call("bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0", instructions="Be brief."))
    assert cache_points(short) == [] and short["system"] == [{"text": "Be brief."}]
    own = {"system": [{"text": LONG}, POINT]}
    body = sent(Bedrock(), call("bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0", tools=[TOOL], extra_body=own))
    assert cache_points(body) == ["system[1]"]


# -- usage -----------------------------------------------------------------------------------


def test_anthropic_usage_counts_cache_reads_and_writes_as_input() -> None:
    c = call("anthropic/claude-sonnet-4-5", input="hi")
    message = {"id": "msg_1", "type": "message", "role": "assistant", "content": [{"type": "text", "text": "yo"}],
               "stop_reason": "end_turn", "usage": {"input_tokens": 5, "cache_creation_input_tokens": 100,
                                                    "cache_read_input_tokens": 2000, "output_tokens": 3}}  # fmt: skip
    usage = Anthropic().parse_response(orjson.dumps(message), c)[0]["usage"]
    assert usage["input_tokens"] == 2105 and usage["total_tokens"] == 2108
    assert usage["input_tokens_details"] == {"cached_tokens": 2000, "cache_write_tokens": 100}


def test_converse_usage_counts_cache_reads_and_writes_as_input() -> None:
    c = call("bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0", input="hi")
    reply = {"output": {"message": {"role": "assistant", "content": [{"text": "yo"}]}}, "stopReason": "end_turn",
             "usage": {"inputTokens": 5, "outputTokens": 3, "totalTokens": 2108, "cacheReadInputTokens": 2000,
                       "cacheWriteInputTokens": 100}}  # fmt: skip
    usage = Bedrock().parse_response(orjson.dumps(reply), c)[0]["usage"]
    assert usage["input_tokens"] == 2105
    assert usage["input_tokens_details"] == {"cached_tokens": 2000, "cache_write_tokens": 100}
    plain = {**reply, "usage": {"inputTokens": 5, "outputTokens": 3, "totalTokens": 8}}
    assert Bedrock().parse_response(orjson.dumps(plain), c)[0]["usage"]["input_tokens_details"] == {
        "cached_tokens": 0,
        "cache_write_tokens": 0,
    }


def test_config_switches_it_off_per_deployment_or_for_all() -> None:
    from llmrelay.config import parse_config

    entry = {"model_name": "claude", "litellm_params": {"model": "anthropic/claude-sonnet-4-5", "api_key": "k"}}
    off = {**entry, "litellm_params": {**entry["litellm_params"], "prompt_caching": False}}
    config = parse_config({"model_list": [entry, {**off, "model_name": "claude-uncached"}]})
    assert config.litellm_settings.prompt_caching is True
    assert [d.extra.get("prompt_caching") for d in config.deployments()] == [None, False]
    assert (
        parse_config(
            {"model_list": [entry], "litellm_settings": {"prompt_caching": False}}
        ).litellm_settings.prompt_caching
        is False
    )


def test_bedrock_takes_prompt_cache_key_and_never_sends_it_as_top_level_cache_control() -> None:
    from llmrelay.providers.support import strip_unsupported

    assert (
        strip_unsupported({"model": "m", "input": "hi", "prompt_cache_key": "conv"}, Bedrock.support, drop=False) == []
    )
    model = "bedrock/invoke/anthropic.claude-sonnet-4-5-20250929-v1:0"
    assert "cache_control" not in sent(Bedrock(), call(model, prompt_cache_key="conv", prompt_caching=False))


def test_cache_reads_and_writes_are_priced_for_bedrock_and_vertex_claude() -> None:
    from llmrelay.gateway.prices import table_rates

    usage = {"input_tokens": 1_000_000, "output_tokens": 0,
             "input_tokens_details": {"cached_tokens": 600_000, "cache_write_tokens": 400_000}}  # fmt: skip
    models = [("bedrock", "anthropic.claude-sonnet-4-20250514-v1:0"), ("vertex_ai", "claude-sonnet-4@20250514"),
              ("anthropic", "claude-sonnet-4-20250514")]  # fmt: skip
    for provider, model in models:
        assert table_rates(provider, model).cost(usage) == pytest.approx(0.6 * 0.3 + 0.4 * 3.75)  # $/MTok


def test_the_sdk_router_takes_the_default() -> None:
    import llmrelay

    entry = {"model_name": "claude", "litellm_params": {"model": "anthropic/claude-sonnet-4-5", "api_key": "k"}}
    assert llmrelay.Router(model_list=[entry], store="memory").relay.prompt_caching is True
    assert llmrelay.Router(model_list=[entry], store="memory", prompt_caching=False).relay.prompt_caching is False
