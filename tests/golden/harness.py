"""Golden cases for the pure adapters: load a case folder, run it, and (re)write its files.

A case is `tests/golden/<provider>/<case>/` holding `request.json` (the Responses request a
client sends, plus `_context`: replayed history for `Call.context`), the upstream's answer
(`upstream_response.json` or `.sse`) and the goldens derived from them. Everything here is
deterministic: ids come from a counter and the clock is fixed, so reruns are byte-stable.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import orjson

from llmrelay import items
from llmrelay.items import normalize
from llmrelay.providers.anthropic import Anthropic
from llmrelay.providers.base import Adapter, Call
from llmrelay.providers.bedrock import Bedrock
from llmrelay.providers.chat import Chat
from llmrelay.providers.gemini import Gemini
from llmrelay.providers.openai import OpenAIResponses
from llmrelay.providers.registry import Deployment, make_deployment
from llmrelay.providers.vertex import VertexAnthropic, VertexGemini
from llmrelay.streaming.events import StreamEvent
from llmrelay.streaming.sse import SSEDecoder
from llmrelay.transport import HttpRequest

Json = dict[str, Any]

ROOT = Path(__file__).resolve().parent
ORIGIN = "http://upstream.test"
# One fixed base per wire protocol, so URLs in the goldens never depend on the environment.
BASES = {
    "anthropic": ORIGIN + "/v1",
    "gemini": ORIGIN + "/v1beta",
    "chat": ORIGIN + "/v1",
    "responses": ORIGIN + "/v1",
    "bedrock": ORIGIN,
    "vertex_gemini": ORIGIN,  # Vertex's base is the host: the path is Vertex's own
    "vertex_anthropic": ORIGIN,
}
ADAPTERS: dict[str, Adapter] = {
    "anthropic": Anthropic(),
    "gemini": Gemini(),
    "chat": Chat(),
    "responses": OpenAIResponses(),
    "bedrock": Bedrock(),
    "vertex_gemini": VertexGemini(),
    "vertex_anthropic": VertexAnthropic(),
}
# The wire protocol each API speaks (Vertex serves Gemini's and Anthropic's).
WIRES = {"vertex_gemini": "gemini", "vertex_anthropic": "anthropic"}
VERTEX = {"vertex_project": "golden", "vertex_location": "us-east5"}
CREATED_AT = 1_700_000_000
TEST_KEY = "test-key"
MASK = "***"
SECRET_HEADERS = frozenset({"authorization", "api-key", "x-api-key", "x-goog-api-key"})
HANDWRITTEN = "handwritten.md"  # marks a case whose upstream answer was transcribed, not recorded


def deployment(model: str, base: str) -> Deployment:
    return make_deployment(model, api_key=TEST_KEY, api_base=base, cloud_settings=VERTEX)


def counter_ids() -> Callable[[str], str]:
    """A `Call.new_id` that mints `msg_0001`, `fc_0002`, ...: stable across runs."""
    counter = itertools.count(1)
    return lambda prefix: f"{prefix}_{next(counter):04d}"


@dataclass(frozen=True)
class Case:
    path: Path

    @property
    def id(self) -> str:
        return f"{self.path.parent.name}/{self.path.name}"

    @cached_property
    def request(self) -> Json:
        return json.loads((self.path / "request.json").read_text())

    @property
    def stream(self) -> bool:
        return bool(self.request.get("stream"))

    @property
    def api(self) -> str:
        return deployment(self.request["model"], ORIGIN).provider.api

    @property
    def wire(self) -> str:
        return WIRES.get(self.api, self.api)

    @property
    def adapter(self) -> Adapter:
        return ADAPTERS[self.api]

    @property
    def handwritten(self) -> bool:
        return (self.path / HANDWRITTEN).exists()

    @property
    def upstream_response_path(self) -> Path:
        if not self.stream:
            return self.path / "upstream_response.json"
        # Bedrock streams are binary AWS event-stream messages, not SSE
        return self.path / ("upstream_response.eventstream" if self.api == "bedrock" else "upstream_response.sse")

    @property
    def expected_path(self) -> Path:
        return self.path / ("expected.events.jsonl" if self.stream else "expected.json")

    @property
    def fake_script(self) -> Json | None:
        """A reply script for the fake (its `/_fake/enqueue` format), when the default echo won't do."""
        path = self.path / "fake_script.json"
        return json.loads(path.read_text()) if path.exists() else None

    def call(self) -> Call:
        """A fresh `Call` for this case: each run starts its id counter from 1."""
        request = copy.deepcopy(self.request)
        context = request.pop("_context", [])
        new_id = counter_ids()
        return Call(
            id=new_id("resp"),
            params=request,
            deployment=deployment(request["model"], BASES[self.api]),
            input_items=normalize(copy.deepcopy(request.get("input") or []), new_id),
            created_at=CREATED_AT,
            new_id=new_id,
            context=context,
        )


def all_cases(root: Path = ROOT) -> list[Case]:
    return [Case(p.parent) for p in sorted(root.glob("*/*/request.json"))]


def select(ids: Iterable[str], root: Path = ROOT) -> list[Case]:
    cases = {c.id: c for c in all_cases(root)}
    unknown = [i for i in ids if i not in cases]
    if unknown:
        raise SystemExit(f"unknown case(s): {', '.join(unknown)}; known: {', '.join(cases)}")
    return [cases[i] for i in ids]


# -- running the adapters -----------------------------------------------------------------------


def upstream_request(case: Case) -> Json:
    """`build_request` as a golden: method, url, headers with the key masked, body as JSON."""
    return request_golden(case.adapter.build_request(case.call()))


def request_golden(req: HttpRequest) -> Json:
    headers = {k: v.replace(TEST_KEY, MASK) if k.lower() in SECRET_HEADERS else v for k, v in req.headers.items()}
    body = orjson.loads(req.body) if req.body else None
    return {"method": req.method, "url": req.url, "headers": headers, "body": body}


def parse(case: Case) -> tuple[Json, str | None]:
    """The non-stream path: the Response object and the upstream's own id."""
    return case.adapter.parse_response(case.upstream_response_path.read_bytes(), case.call())


@dataclass
class StreamRun:
    events: list[Json]  # each event's data, as the translator left it at the end
    emitted: list[bytes]  # each event serialised the moment it was emitted, as a server writes it
    response: Json | None  # the translator's final `response`
    upstream_id: str | None


def translate(case: Case, chunk_size: int | None = None) -> StreamRun:
    """The stream path, as the core drives it: SSE frames through the translator, then `finish()`.
    `chunk_size` feeds the bytes in pieces, as they arrive off a socket."""
    raw = case.upstream_response_path.read_bytes()
    translator = case.adapter.stream_translator(case.call())
    decoder = getattr(case.adapter, "frame_decoder", SSEDecoder)()
    events: list[StreamEvent] = []
    emitted: list[bytes] = []

    def emit(batch: list[StreamEvent]) -> None:
        # Serialised right away: a later mutation of an emitted event would not reach the wire.
        emitted.extend(orjson.dumps(e.data) for e in batch)
        events.extend(batch)

    step = chunk_size or len(raw) or 1
    for start in range(0, len(raw), step):
        for frame in decoder.feed(raw[start : start + step]):
            emit(translator.feed(frame))
    for frame in decoder.finish():
        emit(translator.feed(frame))
    emit(translator.finish())
    return StreamRun([e.data for e in events], emitted, translator.response, translator.upstream_id)


def replay_body(case: Case, response: Json, follow_up: str = "Thanks.") -> Json:
    """The upstream body of the next turn, whose history is this case's turn plus `response`,
    replayed the way the core replays a `previous_response_id` chain."""
    call = case.call()
    call.context = items.replayable(call.context + call.input_items + response["output"])
    call.params = {**call.params, "input": follow_up, "previous_response_id": response["id"], "stream": False}
    return orjson.loads(case.adapter.build_request(call).body or b"{}")


def expected_now(case: Case) -> Json | list[Json]:
    """What the adapter produces for this case today."""
    if case.stream:
        return translate(case).events
    return parse(case)[0]


# -- files --------------------------------------------------------------------------------------


def dump_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def dump_jsonl(values: list[Json]) -> str:
    # Keys stay in emission order: `type` and `sequence_number` first reads best line by line.
    return "".join(json.dumps(v, ensure_ascii=False) + "\n" for v in values)


def load_expected(case: Case) -> Json | list[Json]:
    text = case.expected_path.read_text()
    if case.stream:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


def write_upstream_request(case: Case) -> None:
    (case.path / "upstream_request.json").write_text(dump_json(upstream_request(case)))


def write_expected(case: Case) -> None:
    value = expected_now(case)
    text = dump_jsonl(value) if isinstance(value, list) else dump_json(value)
    case.expected_path.write_text(text)
