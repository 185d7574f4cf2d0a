"""Splice: the events of a continuing leg, rewritten into the stream the client already reads."""

from __future__ import annotations

from typing import Any

from llmrelay.router.splice import Splice
from llmrelay.streaming.builder import ResponseBuilder
from llmrelay.streaming.events import StreamEvent


def leg(response_id: str, texts: list[str], *, finish: bool, usage: dict[str, Any] | None = None) -> list[StreamEvent]:
    counter = iter(range(1000))
    b = ResponseBuilder({"id": response_id, "object": "response"}, lambda p: f"{p}_{response_id}_{next(counter)}")
    events = b.start()
    for t in texts:
        events += b.text(t)
    if finish:
        events += b.finish(usage=usage)
    return events


def usage(i: int, o: int) -> dict[str, Any]:
    return {"input_tokens": i, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": o,
            "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": i + o}  # fmt: skip


def test_a_message_cut_mid_text_is_continued_in_place_with_usage_summed() -> None:
    splice = Splice()
    first = leg("resp_1", ["Hel", "lo "], finish=False)
    for e in first:
        splice.keep(e)
    shown = splice.broke({"usage": usage(10, 2)})
    assert shown.as_input() == [{"type": "message", "role": "assistant",
                                 "content": [{"type": "output_text", "text": "Hello "}]}]  # fmt: skip
    splice.next_leg()
    second = [e for ev in leg("resp_1", ["world"], finish=True, usage=usage(12, 1)) for e in splice.rewrite(ev)]
    types = [e.type for e in second]
    assert "response.created" not in types and "response.output_item.added" not in types
    assert "response.content_part.added" not in types
    seqs = [e.data["sequence_number"] for e in first + second]
    assert seqs == list(range(len(seqs)))
    item_id = first[2].data["item"]["id"]
    assert {e.data.get("item_id") for e in second if "item_id" in e.data} == {item_id}
    done = next(e for e in second if e.type == "response.output_text.done")
    assert done.data["text"] == "Hello world"
    final = second[-1].data["response"]
    assert second[-1].type == "response.completed"
    assert [i["id"] for i in final["output"]] == [item_id]
    assert final["output"][0]["content"][0]["text"] == "Hello world"
    assert final["usage"]["input_tokens"] == 22 and final["usage"]["output_tokens"] == 3


def test_an_item_the_next_leg_cannot_continue_is_closed_as_incomplete_first() -> None:
    splice = Splice()
    counter = iter(range(1000))
    b = ResponseBuilder({"id": "r", "object": "response"}, lambda p: f"{p}_{next(counter)}")
    first = b.start() + b.function_call("call_1", "lookup") + b.function_arguments('{"q": "x')
    for e in first:
        splice.keep(e)
    assert splice.broke().as_input() == []  # half a tool call is not replayed
    splice.next_leg()
    second = [e for ev in leg("r", ["Sorry"], finish=True) for e in splice.rewrite(ev)]
    assert [e.type for e in second[:2]] == ["response.function_call_arguments.done", "response.output_item.done"]
    assert second[1].data["item"]["status"] == "incomplete"
    added = next(e for e in second if e.type == "response.output_item.added")
    assert added.data["output_index"] == 1
    final = second[-1].data["response"]
    assert [i["type"] for i in final["output"]] == ["function_call", "message"]


def test_when_nothing_is_left_the_stream_fails_with_what_was_shown() -> None:
    splice = Splice()
    for e in leg("r", ["partial"], finish=False):
        splice.keep(e)
    splice.broke()
    events = splice.fail("gone")
    assert [e.type for e in events][-1] == "response.failed"
    response = events[-1].data["response"]
    assert response["status"] == "failed" and response["output"][0]["status"] == "incomplete"
    assert response["output"][0]["content"][0]["text"] == "partial"
