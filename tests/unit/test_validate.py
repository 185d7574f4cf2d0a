import json
from pathlib import Path

import pytest

import llmrelay
from llmrelay import compaction
from llmrelay.validate import CALL_OPTIONS, MAX_DEPTH, check_create, check_items

GOLDEN = sorted((Path(__file__).parent.parent / "golden").glob("*/*/request.json"))

BASE = {"model": "m"}


def _msg(content: object, role: str = "user") -> dict:
    return {"role": role, "content": content}


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": "m"}, "input"),
        ({"model": "m", "input": 3}, "input"),
        ({"model": "m", "input": "x", "temperature": "hot"}, "temperature"),
        ({"model": "m", "input": "x", "max_output_tokens": True}, "max_output_tokens"),
        ({"model": "m", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": "m", "input": "x", "stream": "yes"}, "stream"),
        ({"model": "m", "input": "x", "bogus": 1}, "bogus"),
    ],
)
def test_bad_requests_name_the_field(params: dict, param: str) -> None:
    with pytest.raises(llmrelay.BadRequestError) as exc:
        check_create(params)
    assert exc.value.status_code == 400
    assert exc.value.body["param"] == param
    assert param in exc.value.message


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        # input items
        ({"input": [_msg(123)]}, "input[0].content", "invalid_type"),
        ({"input": [_msg(None)]}, "input[0].content", "invalid_type"),
        ({"input": [{"foo": 1}]}, "input[0].content", "missing_required_parameter"),
        ({"input": [{"content": "hi"}]}, "input[0].role", "missing_required_parameter"),
        ({"input": [_msg("hi", role="robot")]}, "input[0].role", "invalid_value"),
        ({"input": [_msg("ok"), {"type": "bogus"}]}, "input[1].type", "invalid_value"),
        ({"input": [{"type": 7}]}, "input[0].type", "invalid_type"),
        ({"input": ["hi"]}, "input[0]", "invalid_type"),
        ({"input": [_msg([{"type": "input_text"}])]}, "input[0].content[0].text", "missing_required_parameter"),
        ({"input": [_msg([{"type": "input_text", "text": 5}])]}, "input[0].content[0].text", "invalid_type"),
        ({"input": [_msg([{"type": "nope", "text": "x"}])]}, "input[0].content[0].type", "invalid_value"),
        ({"input": [_msg([{"text": "x"}])]}, "input[0].content[0].type", "missing_required_parameter"),
        ({"input": [_msg(["x"])]}, "input[0].content[0]", "invalid_type"),
        ({"input": [_msg([{"type": "input_image", "detail": "huge"}])]}, "input[0].content[0].detail",
         "invalid_value"),
        ({"input": [{"type": "function_call_output", "call_id": "c"}]}, "input[0].output",
         "missing_required_parameter"),
        ({"input": [{"type": "function_call_output", "call_id": "c", "output": 1}]}, "input[0].output",
         "invalid_type"),
        ({"input": [{"type": "function_call", "call_id": "c", "name": "f"}]}, "input[0].arguments",
         "missing_required_parameter"),
        ({"input": [{"type": "reasoning", "id": "rs_1"}]}, "input[0].summary", "missing_required_parameter"),
        ({"input": [{"type": "reasoning", "summary": [{"type": "summary_text"}]}]}, "input[0].summary[0].text",
         "missing_required_parameter"),
        ({"input": [{"type": "computer_call_output", "call_id": "c", "output": {"type": "computer_screenshot",
                                                                                  "image_url": 3}}]},
         "input[0].output.image_url", "invalid_type"),
        ({"input": [{"type": "compaction"}]}, "input[0].encrypted_content", "missing_required_parameter"),
        ({"input": [{"type": "item_reference"}]}, "input[0].id", "missing_required_parameter"),
        # tools
        ({"input": "x", "tools": [{"type": "function", "name": "f"}, {"type": "wat"}]}, "tools[1].type",
         "invalid_value"),
        ({"input": "x", "tools": [{"type": "function"}]}, "tools[0].name", "missing_required_parameter"),
        ({"input": "x", "tools": [{"name": "f"}]}, "tools[0].type", "missing_required_parameter"),
        ({"input": "x", "tools": [{"type": "function", "name": "f", "parameters": []}]}, "tools[0].parameters",
         "invalid_type"),
        ({"input": "x", "tools": {"type": "function"}}, "tools", "invalid_type"),
        ({"input": "x", "tools": [{"type": "namespace", "name": "n", "description": "d",
                                   "tools": [{"type": "function"}]}]}, "tools[0].tools[0].name",
         "missing_required_parameter"),
        # other top-level fields: types, enums, ranges
        ({"input": "x", "tool_choice": "maybe"}, "tool_choice", "invalid_value"),
        ({"input": "x", "truncation": "sometimes"}, "truncation", "invalid_value"),
        ({"input": "x", "truncation": 1.5}, "truncation", "invalid_type"),
        ({"input": "x", "include": ["nope"]}, "include[0]", "invalid_value"),
        ({"input": "x", "reasoning": {"effort": "huge"}}, "reasoning.effort", "invalid_value"),
        ({"input": "x", "text": {"format": {"type": "json_schema"}}}, "text.format.name",
         "missing_required_parameter"),
        ({"input": "x", "metadata": {"a": 1}}, "metadata.a", "invalid_type"),
        ({"input": "x", "metadata": {str(i): "v" for i in range(17)}}, "metadata", "object_above_max_properties"),
        ({"input": "x", "metadata": {"k": "v" * 513}}, "metadata.k", "string_above_max_length"),
        ({"input": "x", "temperature": 2.5}, "temperature", "decimal_above_max_value"),
        ({"input": "x", "temperature": -1}, "temperature", "decimal_below_min_value"),
        ({"input": "x", "top_p": 1.5}, "top_p", "decimal_above_max_value"),
        ({"input": "x", "top_logprobs": 21}, "top_logprobs", "integer_above_max_value"),
        ({"input": "x", "top_logprobs": -1}, "top_logprobs", "integer_below_min_value"),
        ({"input": "x", "max_tool_calls": 0}, "max_tool_calls", "integer_below_min_value"),
        ({"input": "x", "max_tool_calls": 1e30}, "max_tool_calls", "integer_above_max_value"),
        ({"input": "x", "max_output_tokens": 2**63}, "max_output_tokens", "integer_above_max_value"),
        ({"input": "x", "top_p": True}, "top_p", "invalid_type"),
    ],
)  # fmt: skip
def test_bad_fields_and_items_are_400s_naming_their_path(fields: dict, param: str, code: str) -> None:
    with pytest.raises(llmrelay.BadRequestError) as exc:
        check_create({**BASE, **fields})
    assert exc.value.status_code == 400
    assert (exc.value.body["param"], exc.value.body["code"]) == (param, code)
    assert exc.value.body["type"] == "invalid_request_error"


def test_messages_are_worded_as_openai_words_them() -> None:
    with pytest.raises(llmrelay.BadRequestError) as exc:
        check_create({**BASE, "input": [_msg(123)]})
    assert exc.value.message == (
        "Invalid type for 'input[0].content': expected one of a string or an array, but got an integer instead."
    )
    with pytest.raises(llmrelay.BadRequestError) as exc:
        check_create({**BASE, "input": "x", "tool_choice": "maybe"})
    assert exc.value.message == "Invalid value: 'maybe'. Supported values are: 'none', 'auto', and 'required'."
    with pytest.raises(llmrelay.BadRequestError) as exc:
        check_create({**BASE, "input": "x", "temperature": 3})
    assert exc.value.message == (
        "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 3 instead."
    )


def test_every_documented_field_is_accepted() -> None:
    check_create(
        {
            "model": "m", "input": [{"role": "user", "content": "hi"}], "instructions": "be brief",
            "tools": [{"type": "computer_use_preview", "display_width": 1024, "display_height": 768,
                       "environment": "browser"}],
            "tool_choice": "auto", "text": {"format": {"type": "text"}}, "reasoning": {"summary": "concise"},
            "include": ["reasoning.encrypted_content"], "truncation": "auto", "metadata": {"k": "v"},
            "parallel_tool_calls": True, "store": True, "background": False, "temperature": 0.5, "top_p": 1,
            "user": "u", "service_tier": "auto", "prompt_cache_key": "p", "safety_identifier": "s",
            "max_tool_calls": 3, "top_logprobs": 2, "conversation": "conv_1", "max_output_tokens": 100,
            "stream": False, "previous_response_id": "resp_1",
        }
    )  # fmt: skip


VALID_INPUTS = [
    "plain text",
    [{"role": "user", "content": "hi"}],
    [{"type": "message", "role": "assistant", "content": "earlier answer"}],
    # an output item sent back as input, with the fields a parsed Response carries (nulls too)
    [{"id": "msg_1", "type": "message", "role": "assistant", "status": "completed", "phase": None,
      "content": [{"type": "output_text", "text": "hi", "annotations": [], "logprobs": []}]}],
    [{"role": "assistant", "content": [{"type": "output_text", "text": "hi"}, {"type": "refusal", "refusal": "no"}]}],
    [{"role": "user", "content": [{"type": "input_text", "text": "look"},
                                   {"type": "input_image", "image_url": "data:image/png;base64,AAAA",
                                    "detail": "auto"},
                                   {"type": "input_file", "file_data": "data:application/pdf;base64,AA",
                                    "filename": "a.pdf"}]}],
    [{"role": "developer", "content": "rules"}, {"role": "system", "content": [{"type": "input_text", "text": "s"}]}],
    [{"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}", "namespace": "crm", "id": "fc_1",
      "status": "completed"},
     {"type": "function_call_output", "call_id": "c1", "output": "done"},
     {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": "done"}]}],
    [{"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "anthropic:abc", "content": None}],
    [{"type": "computer_call", "id": "cu_1", "call_id": "c2", "status": "completed", "pending_safety_checks": [],
      "action": {"type": "click", "button": "left", "x": 1, "y": 2}},
     {"type": "computer_call_output", "call_id": "c2",
      "output": {"type": "computer_screenshot", "image_url": "data:image/png;base64,AAAA"}}],
    [{"type": "custom_tool_call", "call_id": "c3", "name": "g", "input": "x"},
     {"type": "custom_tool_call_output", "call_id": "c3", "output": "y"}],
    [{"type": "item_reference", "id": "msg_1"}, {"id": "msg_2"}],
    [compaction.compaction_item("the summary", "cmp_1")],
    [{"role": "user", "content": "hi", "x-unknown-extension": {"kept": True}}],
]  # fmt: skip


@pytest.mark.parametrize("value", VALID_INPUTS)
def test_valid_inputs_pass(value: object) -> None:
    check_create({**BASE, "input": value})


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}")
def test_every_golden_request_and_its_replayed_history_pass(path: Path) -> None:
    # `_context` is stored output (every provider's translation of it) sent back as input.
    request = json.loads(path.read_text())
    check_items(request.pop("_context", []), "input")
    check_create({k: v for k, v in request.items() if k not in CALL_OPTIONS})


def test_codex_shaped_requests_pass() -> None:
    # Codex leaves out the ids of the reasoning and local_shell_call items it sends back.
    history = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "fix it"}]},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "thinking"}], "encrypted_content": "e"},
        {
            "type": "local_shell_call",
            "call_id": "c1",
            "status": "completed",
            "action": {"type": "exec", "command": ["ls"], "env": {}},
        },
        {"type": "local_shell_call_output", "call_id": "c1", "output": "a.py"},
        {"type": "function_call", "name": "shell", "arguments": "{}", "call_id": "c2"},
        {"type": "function_call_output", "call_id": "c2", "output": "ok"},
        {"type": "custom_tool_call", "call_id": "c3", "name": "apply_patch", "input": "*** Begin Patch"},
        {"type": "custom_tool_call_output", "call_id": "c3", "output": "done"},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "done"}],
            "phase": "final_answer",
            "end_turn": True,
        },
    ]
    check_create({
        **BASE, "input": history, "client_metadata": {"originator": "codex_exec"}, "prompt_cache_key": "k",
        "tools": [{"type": "namespace", "name": "crm", "description": "CRM tools",
                   "tools": [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]},
                  {"type": "function", "name": "f", "parameters": None, "strict": None},
                  {"type": "custom", "name": "apply_patch", "format": {"type": "grammar", "syntax": "lark",
                                                                       "definition": "start: x"}},
                  {"type": "web_search"}],
        "reasoning": {"effort": "high", "summary": "auto"}, "include": ["reasoning.encrypted_content"],
        "text": {"verbosity": "low"}, "instructions": [{"role": "developer", "content": "rules"}],
    })  # fmt: skip


def test_conversation_items_get_the_same_checks() -> None:
    check_items([{"role": "user", "content": "hi"}], "items")
    with pytest.raises(llmrelay.BadRequestError) as exc:
        check_items([{"role": "user", "content": "hi"}, {"type": "message", "role": "user", "content": 1}], "items")
    assert exc.value.body["param"] == "items[1].content"


def _nested(depth: int) -> object:
    value: object = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def test_json_nested_deeper_than_the_store_writes_is_refused() -> None:
    # The request object itself is one level: its function tool's parameters add the rest.
    def request(levels: int) -> dict:
        return {
            **BASE,
            "input": "x",
            "tools": [{"type": "function", "name": "f", "parameters": {"a": _nested(levels)}}],
        }

    check_create(request(MAX_DEPTH - 4))  # root, tools, tool, parameters: 4 levels, then the lists
    with pytest.raises(llmrelay.BadRequestError) as exc:
        check_create(request(MAX_DEPTH - 3))
    assert exc.value.body["param"].startswith("tools[0].parameters.a[0]")
    assert str(MAX_DEPTH) in exc.value.message
    with pytest.raises(llmrelay.BadRequestError) as exc:  # as deep as a JSON body can parse
        check_create({**BASE, "input": [_msg(_nested(1000))]})
    assert exc.value.body["param"].startswith("input[0].content[0]")


def test_values_that_are_not_json_are_refused() -> None:
    with pytest.raises(llmrelay.BadRequestError) as exc:
        check_create({**BASE, "input": [_msg("hi")], "metadata": {"k": object()}})
    assert exc.value.body["param"] == "metadata.k"
