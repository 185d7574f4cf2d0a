"""The ResponseBuilder's grammar, checked with the openai package's own stream accumulator."""

import itertools

from openai import omit
from openai._models import construct_type
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent

from llmrelay.providers.base import Call, response_skeleton
from llmrelay.providers.registry import make_deployment
from llmrelay.streaming.builder import ResponseBuilder


def _builder() -> ResponseBuilder:
    counter = itertools.count()
    skeleton = {"id": "resp_1", "object": "response", "created_at": 1, "model": "m", "output": [],
                "parallel_tool_calls": True, "tool_choice": "auto", "tools": []}  # fmt: skip
    return ResponseBuilder(skeleton, lambda prefix: f"{prefix}_{next(counter)}")


def _run() -> list:
    b = _builder()
    events = b.start()
    events += b.reasoning("Thinking ")
    events += b.reasoning("hard.")
    events += b.reasoning_signature("sig")
    events += b.text("Hello ")
    events += b.text("world")
    events += b.function_call("call_1", "lookup")
    events += b.function_arguments('{"q":')
    events += b.function_arguments('"x"}')
    events += b.item({"type": "computer_call", "call_id": "c1", "action": {"type": "screenshot"},
                      "pending_safety_checks": [], "status": "completed"})  # fmt: skip
    events += b.finish(usage={"input_tokens": 1, "output_tokens": 2, "total_tokens": 3,
                              "input_tokens_details": {"cached_tokens": 0},
                              "output_tokens_details": {"reasoning_tokens": 0}})  # fmt: skip
    return events


def test_order_and_sequence_numbers() -> None:
    events = _run()
    assert [e.data["sequence_number"] for e in events] == list(range(len(events)))
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    # items never interleave: every output_item.added is followed by its own done before the next added
    open_index = None
    for e in events:
        if e.type == "response.output_item.added":
            assert open_index is None
            open_index = e.data["output_index"]
        elif e.type == "response.output_item.done":
            assert e.data["output_index"] == open_index
            open_index = None
    assert open_index is None


def test_openai_accumulator_agrees_with_the_final_response() -> None:
    events = _run()
    typed = [construct_type(type_=ResponseStreamEvent, value=e.data) for e in events]
    state = ResponseStreamState(input_tools=omit, text_format=omit)
    for event in typed:
        state.handle_event(event)
    final = construct_type(type_=Response, value=events[-1].data["response"])
    assert state._completed_response is not None
    assert final.output_text == "Hello world"
    kinds = [item.type for item in final.output]
    assert kinds == ["reasoning", "message", "function_call", "computer_call"]
    assert final.output[0].summary[0].text == "Thinking hard."
    assert final.output[0].encrypted_content == "sig"
    assert final.output[2].arguments == '{"q":"x"}'
    assert final.status == "completed"


def test_incomplete_and_failed() -> None:
    b = _builder()
    b.start()
    b.text("partial")
    last = b.finish(incomplete_reason="max_output_tokens")[-1]
    assert last.type == "response.incomplete"
    assert last.data["response"]["incomplete_details"] == {"reason": "max_output_tokens"}

    b = _builder()
    b.start()
    events = b.fail("boom")
    assert events[-1].type == "response.failed"
    assert events[-1].data["response"]["error"] == {"code": "server_error", "message": "boom"}


def test_parameters_sent_as_null_are_echoed_as_their_defaults() -> None:
    nulls = dict.fromkeys(("parallel_tool_calls", "tool_choice", "store", "temperature", "top_p", "top_logprobs"))
    call = Call(id="resp_1", params={"model": "demo", **nulls}, deployment=make_deployment("mock/demo"),
                input_items=[], created_at=1, new_id=str)  # fmt: skip
    echoed = Response.model_validate(response_skeleton(call))
    assert echoed.parallel_tool_calls is True and echoed.tool_choice == "auto" and echoed.temperature == 1.0
