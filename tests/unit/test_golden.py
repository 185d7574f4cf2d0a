"""Golden fixtures for the pure provider adapters: tests/golden/<provider>/<case>/ (see its README).

Each case pins `build_request` (upstream_request.json) and what the adapter makes of a recorded
upstream answer (expected.json / expected.events.jsonl). Stream goldens are also checked against
the Responses stream grammar, and folded with the openai package's own accumulator.
`UPDATE_GOLDEN=1 python -m pytest tests/unit/test_golden.py` rewrites the goldens from the adapters.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterable
from typing import Any

import pytest
from openai import omit
from openai._models import construct_type
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent

from llmrelay import items
from llmrelay.streaming.events import LIFECYCLE, TERMINAL
from llmrelay.streaming.sse import SSEDecoder
from tests.golden import harness
from tests.golden.harness import Case

Json = dict[str, Any]

UPDATE = os.environ.get("UPDATE_GOLDEN", "") not in ("", "0")
CASES = harness.all_cases()
STREAMS = [c for c in CASES if c.stream]
RESPONSES = [c for c in CASES if not c.stream]

# Defects these goldens expose, by (check, case id). Each stays an expected failure until the
# code is fixed; xfail is strict, so the fix shows up as XPASS: then delete the entry.
KNOWN_DEFECTS: dict[tuple[str, str], str] = {}


def params(check: str, cases: Iterable[Case]) -> list[Any]:
    out = []
    for case in cases:
        reason = KNOWN_DEFECTS.get((check, case.id))
        marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
        out.append(pytest.param(case, id=case.id, marks=marks))
    return out


def _read_json(case: Case, name: str) -> Json:
    return json.loads((case.path / name).read_text())


# -- goldens ------------------------------------------------------------------------------------


def test_cases_found() -> None:
    providers = {c.path.parent.name for c in CASES}
    assert {"anthropic", "gemini", "chat", "openai", "bedrock"} <= providers
    for case in CASES:
        assert UPDATE or case.expected_path.exists(), f"{case.id}: no expected file; run UPDATE_GOLDEN=1"
        assert case.upstream_response_path.exists(), f"{case.id}: no upstream answer; run python -m tests.golden.record"


@pytest.mark.parametrize("case", params("request", CASES))
def test_upstream_request(case: Case) -> None:
    if UPDATE:
        harness.write_upstream_request(case)
    assert harness.upstream_request(case) == _read_json(case, "upstream_request.json")


@pytest.mark.parametrize("case", params("expected", CASES))
def test_expected(case: Case) -> None:
    if UPDATE:
        harness.write_expected(case)
    assert harness.expected_now(case) == harness.load_expected(case)


@pytest.mark.parametrize("case", params("deterministic", CASES))
def test_byte_stable(case: Case) -> None:
    # Same case, fresh Call: identical bytes, so goldens never churn on a rerun.
    first, second = harness.expected_now(case), harness.expected_now(case)
    assert json.dumps(first) == json.dumps(second)


def test_no_auth_secret_in_goldens() -> None:
    for case in CASES:
        text = (case.path / "upstream_request.json").read_text()
        assert harness.TEST_KEY not in text, case.id


# -- non-stream ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", params("response", RESPONSES))
def test_response_shape(case: Case) -> None:
    response, upstream_id = harness.parse(case)
    call = case.call()
    assert response["id"] == call.id
    assert response["object"] == "response"
    assert response["status"] in ("completed", "incomplete")
    assert response["previous_response_id"] == case.request.get("previous_response_id")
    model = construct_type(type_=Response, value=response)
    assert isinstance(model, Response)
    if case.api == "responses":
        # Native: the upstream's Response, with only our id and the client's previous id swapped in.
        upstream = json.loads(case.upstream_response_path.read_bytes())
        assert upstream_id == upstream["id"]
        changed = {k for k in upstream.keys() | response.keys() if upstream.get(k) != response.get(k)}
        assert changed <= {"id", "previous_response_id"}
    else:
        assert upstream_id is None
        assert response["created_at"] == harness.CREATED_AT
        assert response["model"] == call.deployment.model


@pytest.mark.parametrize("case", params("truncated", [c for c in CASES if "incomplete" in c.path.name]))
def test_truncated_message_is_incomplete(case: Case) -> None:
    # OpenAI marks the message that max_output_tokens cut short as incomplete, not completed.
    response = _final_response(case)
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    messages = [i for i in response["output"] if i["type"] == "message"]
    assert messages, "a truncated reply still returns the text it produced"
    assert messages[-1]["status"] == "incomplete"


# -- stream -------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", params("lifecycle", STREAMS))
def test_stream_lifecycle(case: Case) -> None:
    events = harness.translate(case).events
    numbers = [e["sequence_number"] for e in events]
    assert numbers[0] == 0
    assert all(a < b for a, b in itertools.pairwise(numbers)), numbers
    assert [e["type"] for e in events[:2]] == ["response.created", "response.in_progress"]
    assert events[-1]["type"] in TERMINAL
    assert not any(e["type"] in TERMINAL for e in events[:-1]), "only the last event may be terminal"
    ids = {e["response"]["id"] for e in events if e["type"] in LIFECYCLE}
    assert ids == {case.call().id}, "every lifecycle event carries our response id"


@pytest.mark.parametrize("case", params("items", STREAMS))
def test_stream_items_never_interleave(case: Case) -> None:
    """Each output_item.added is done before the next item opens; deltas name the open item."""
    run = harness.translate(case)
    open_item: tuple[int, str] | None = None
    done_items: list[Json] = []
    for e in run.events:
        kind = e["type"]
        if kind == "response.output_item.added":
            assert open_item is None, f"#{e['sequence_number']} opens an item while {open_item} is open"
            open_item = (e["output_index"], e["item"]["id"])
            assert e["output_index"] == len(done_items)
        elif kind == "response.output_item.done":
            assert open_item == (e["output_index"], e["item"]["id"]), f"#{e['sequence_number']} closes another item"
            done_items.append(e["item"])
            open_item = None
        elif "item_id" in e:
            assert open_item == (e["output_index"], e["item_id"]), f"#{e['sequence_number']} outside its item"
    assert open_item is None
    final = run.events[-1]["response"]
    assert final["output"] == done_items, "the terminal response lists exactly the items that were done"
    assert run.response == final, "the response the store saves is the one the client saw"


@pytest.mark.parametrize("case", params("grammar", STREAMS))
def test_stream_part_indices(case: Case) -> None:
    """Deltas and .done events point at the content / summary part their .added opened."""
    opened: set[tuple[str, str, int]] = set()
    for e in harness.translate(case).events:
        kind = e["type"]
        for index in ("content_index", "summary_index"):
            if index not in e:
                continue
            key = (e["item_id"], index, e[index])
            if kind.endswith("part.added"):
                opened.add(key)
            else:
                assert key in opened, f"#{e['sequence_number']} {kind} names a part never added: {key}"


@pytest.mark.parametrize("case", params("accumulator", STREAMS))
def test_openai_accumulator_agrees(case: Case) -> None:
    """The openai package folds the events into the same text as the terminal response holds."""
    events = harness.translate(case).events
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=omit, text_format=omit)
    texts: dict[tuple[int, int], str] = {}
    completed: Response | None = None
    for data in events:
        for out in state.handle_event(construct_type(type_=ResponseStreamEvent, value=data)):  # type: ignore[arg-type]
            if out.type == "response.output_text.delta":
                texts[out.output_index, out.content_index] = out.snapshot
            elif out.type == "response.completed":
                completed = out.response
    folded = "".join(texts[k] for k in sorted(texts))
    final = construct_type(type_=Response, value=events[-1]["response"])
    assert isinstance(final, Response)
    assert folded == final.output_text
    if completed is not None:
        assert completed.output_text == final.output_text


@pytest.mark.parametrize("case", params("chunked", STREAMS))
def test_stream_chunking_is_invisible(case: Case) -> None:
    # Bytes arrive off a socket in arbitrary pieces: frames split anywhere give the same events.
    whole = harness.translate(case)
    for size in (1, 7, 64):
        assert harness.translate(case, chunk_size=size).events == whole.events


@pytest.mark.parametrize("case", params("emitted", STREAMS))
def test_events_not_mutated_after_emission(case: Case) -> None:
    # A server writes each event as it comes; a later change to an emitted dict never reaches a client.
    run = harness.translate(case)
    assert [json.loads(raw) for raw in run.emitted] == run.events


@pytest.mark.parametrize("case", params("native", [c for c in STREAMS if c.api == "responses"]))
def test_native_stream_passes_through(case: Case) -> None:
    """Deltas are forwarded untouched; lifecycle events only swap in our id (and the client's previous id)."""
    decoder = SSEDecoder()
    frames = decoder.feed(case.upstream_response_path.read_bytes()) + decoder.finish()
    upstream = [json.loads(f.data) for f in frames]
    run = harness.translate(case)
    assert len(run.events) == len(upstream)
    for ours, theirs in zip(run.events, upstream, strict=True):
        if ours["type"] in LIFECYCLE:
            assert run.upstream_id == theirs["response"]["id"]
            swapped = {"id": ours["response"]["id"], "previous_response_id": case.request.get("previous_response_id")}
            theirs = {**theirs, "response": {**theirs["response"], **swapped}}
        assert ours == theirs


# -- stream and non-stream agree ----------------------------------------------------------------


def _twins() -> list[tuple[Case, Case]]:
    by_id = {c.id: c for c in CASES}
    pairs = []
    for case in RESPONSES:
        twin = by_id.get(case.id + "_stream")
        if twin is not None and twin.request == {**case.request, "stream": True}:
            pairs.append((case, twin))
    return pairs


TWINS = _twins()


def _final_response(case: Case) -> Json:
    return harness.translate(case).events[-1]["response"] if case.stream else harness.parse(case)[0]


def _scrub(value: Any) -> Any:
    """Ids and opaque provider tokens differ between two upstream calls; JSON arguments may differ in spacing."""
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, v in value.items():
        if key in ("id", "call_id", "encrypted_content"):
            out[key] = f"<{key}>"
        elif key == "arguments" and isinstance(v, str):
            out[key] = json.loads(v)
        else:
            out[key] = _scrub(v)
    return out


def test_twins_found() -> None:
    assert len(TWINS) >= 10, [c.id for c, _ in TWINS]


@pytest.mark.parametrize("case", params("twin", [c for c, _ in TWINS]))
def test_stream_twin_matches(case: Case) -> None:
    twin = next(t for c, t in TWINS if c is case)
    whole, streamed = harness.parse(case)[0], _final_response(twin)
    assert _scrub(whole["output"]) == _scrub(streamed["output"])
    for key in ("status", "incomplete_details", "usage"):
        assert whole[key] == streamed[key], key


# -- replay: what the provider said goes back to it unchanged -----------------------------------


def _provider_turn(case: Case, body: Json) -> list[Json]:
    """The provider's reply as the upstream body of the next turn carries it (the turn before "Thanks.")."""
    if case.wire == "gemini":
        return body["contents"][-2]["parts"]
    turn = body["messages"][-2]
    assert turn["role"] == "assistant"
    if case.wire in ("anthropic", "bedrock"):  # without the prompt-cache marks llmrelay adds
        return [{k: v for k, v in b.items() if k != "cache_control"} for b in turn["content"] if "cachePoint" not in b]
    return [turn]


def _said(case: Case) -> list[Json]:
    """What the upstream answered, in the shape it must be sent back in."""
    answer = json.loads(case.upstream_response_path.read_bytes())
    if case.wire == "anthropic":
        return answer["content"]
    if case.wire == "bedrock":
        return answer["output"]["message"]["content"]
    if case.wire == "gemini":
        # Thought text is not sent back (the signature carries the state); call ids are not either.
        parts = [p for p in answer["candidates"][0]["content"]["parts"] if not p.get("thought")]
        return [{**p, "functionCall": {k: v for k, v in p["functionCall"].items() if k != "id"}} if "functionCall" in p
                else p for p in parts]  # fmt: skip
    message = answer["choices"][0]["message"]
    turn = {"role": "assistant", "content": message["content"]}
    return [turn | ({"tool_calls": message["tool_calls"]} if message.get("tool_calls") else {})]


# A web search turn replays as its text: the server tool blocks and their citations stay Anthropic's
# (test_web_search_replay checks that the replayed body is one Anthropic takes).
@pytest.mark.parametrize(
    "case", params("round_trip", [c for c in RESPONSES if c.api != "responses" and "web_search" not in c.id])
)
def test_reply_round_trips(case: Case) -> None:
    """Replaying this turn's output (as `previous_response_id` does) sends the provider back its own
    reply: thinking with its signature, signed Gemini parts, tool calls with their ids."""
    response = harness.parse(case)[0]
    assert _provider_turn(case, harness.replay_body(case, response)) == _said(case)


@pytest.mark.parametrize("case", params("signature", [c for c in CASES if c.wire == "gemini"]))
def test_gemini_signature_goes_back_on_its_call(case: Case) -> None:
    # A Gemini-signed reasoning item just before a function_call signed that call: Gemini 3
    # refuses a replayed call whose first functionCall part lost its thoughtSignature.
    history = case.request.get("_context", []) + items.as_items(case.request.get("input") or [])
    wanted = [
        r["encrypted_content"].removeprefix("gemini:")
        for r, nxt in itertools.pairwise(history)
        if r.get("type") == "reasoning" and nxt.get("type") == "function_call"
    ]
    body = harness.upstream_request(case)["body"]
    signed_calls = [p.get("thoughtSignature") for c in body["contents"] for p in c["parts"] if "functionCall" in p]
    for signature in wanted:
        assert signature in signed_calls
