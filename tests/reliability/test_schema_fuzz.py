"""Schema fuzzing: schemathesis drives every operation of the proxy's own `/openapi.json`
against a real proxy process (the demo model and Claude translated to a fake Anthropic).

Every operation gets positive (schema-valid) and negative (schema-violating) inputs. What
must hold for each: no 5xx; every error in OpenAI's shape; every response, and every event of
a stream, conforms to the schema; the proxy healthy and answering afterwards. The CI budget is
a fixed number of examples per operation (derandomized: the same inputs each run);
`LLMRELAY_RELIABILITY=long` runs random inputs for 30 minutes.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from openai import OpenAI
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance

from llmrelay.streaming.sse import SSEDecoder
from tests.e2e.proxy_process import ProxyProcess, start_proxy, write_config
from tests.fakes.process import FakeServer

LONG = os.environ.get("LLMRELAY_RELIABILITY") == "long"
EXAMPLES = 200 if LONG else 6  # per operation and mode, per pass
SECONDS = 30 * 60 if LONG else 0  # long mode: passes until this runs out
MASTER = "sk-fuzz-master"
MODELS = ("demo", "claude")
EVENT = TypeAdapter(ResponseStreamEvent)
ERROR_KEYS = {"message", "type", "param", "code"}


@dataclass
class Figures:
    operations: int = 0
    inputs: int = 0
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    server_errors: list[str] = field(default_factory=list)
    bad_errors: list[str] = field(default_factory=list)
    schema_violations: list[str] = field(default_factory=list)
    events_checked: int = 0

    def summary(self) -> str:
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        return (
            f"schema fuzz: operations {self.operations}, inputs {self.inputs}, stream events checked "
            f"{self.events_checked}, 5xx {len(self.server_errors)}, non-OpenAI errors {len(self.bad_errors)}, "
            f"schema violations {len(self.schema_violations)} (statuses {statuses})"
        )


@pytest.fixture(scope="module")
def proxy(anthropic_fake: FakeServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    model_list = [
        {"model_name": "demo", "litellm_params": {"model": "mock/demo"}},
        {"model_name": "claude", "litellm_params": {"model": "anthropic/claude-sonnet-4-5",
                                                    "api_base": anthropic_fake.url, "api_key": "test-key"}},
    ]  # fmt: skip
    config = {"model_list": model_list, "general_settings": {"master_key": MASTER}}
    with start_proxy("--config", str(write_config(config, tmp_path_factory.mktemp("cfg")))) as p:
        yield p


def fuzzable(doc: dict[str, Any]) -> dict[str, Any]:
    """The served document, with `model` narrowed to the names this proxy routes: positive
    inputs then reach a model instead of all ending as 404s for an unknown name."""
    doc = copy.deepcopy(doc)
    schemas = doc["components"]["schemas"]
    for name in ("CreateResponse", "InputTokenCountParams", "ResponseCompactParams"):
        schema = schemas[name]
        schema = schemas[schema["$ref"].rsplit("/", 1)[1]] if "$ref" in schema else schema
        schema["properties"]["model"] = {"enum": list(MODELS)}
    return doc


def error_problem(response: Any) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return "not JSON"
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or set(error) != ERROR_KEYS:
        return f"not OpenAI's error shape: {str(body)[:200]}"
    if not isinstance(error["message"], str) or not isinstance(error["type"], str):
        return f"message and type must be strings: {error}"
    return None


def stream_problem(response: Any, figures: Figures) -> str | None:
    """Every event of a stream validates with the openai SDK; sequence numbers run 0, 1, 2..."""
    decoder = SSEDecoder()
    frames = [*decoder.feed(response.content), *decoder.finish()]
    for i, frame in enumerate(frames):
        data = orjson.loads(frame.data)
        try:
            EVENT.validate_python(data)
        except ValueError as exc:
            return f"event {i} ({data.get('type')}) does not validate: {str(exc)[:300]}"
        if data.get("sequence_number") != i:
            return f"event {i} has sequence_number {data.get('sequence_number')}"
        figures.events_checked += 1
    return None if frames else "an empty stream"


def streamed(case: Any) -> Any:
    if isinstance(case.body, dict):
        case.body = {**case.body, "stream": True}
    return case


def fuzz_operation(operation: Any, mode: GenerationMode, base: str, figures: Figures) -> None:
    session = requests.Session()
    session.trust_env = False
    label = f"{operation.label} [{mode.value}]"

    def note(bucket: list[str], text: str, case: Any) -> None:
        bucket.append(f"{label}: {text}\n    {case.as_curl_command()[:600]}")

    strategy = operation.as_strategy(generation_mode=mode)
    if operation.label == "POST /v1/responses" and mode is GenerationMode.POSITIVE:
        strategy = st.one_of(strategy, strategy.map(streamed))  # `stream` is one optional field of many

    @given(case=strategy)
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=not LONG,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))  # fmt: skip
    def run(case: Any) -> None:
        response = case.call(base_url=base, session=session, headers={"Authorization": f"Bearer {MASTER}"},
                             timeout=60)  # fmt: skip
        figures.inputs += 1
        figures.statuses[response.status_code] += 1
        if response.status_code >= 500:
            note(figures.server_errors, f"{response.status_code} {response.text[:300]}", case)
        if response.status_code >= 400 and (problem := error_problem(response)):
            note(figures.bad_errors, problem, case)
        if (response.headers.get("content-type") or [""])[0].startswith("text/event-stream"):
            if problem := stream_problem(response, figures):
                note(figures.schema_violations, problem, case)
            return
        try:
            case.validate_response(response, checks=[response_schema_conformance])
        except (AssertionError, FailureGroup) as exc:
            note(figures.schema_violations, str(exc).strip().splitlines()[-1][:300] + "\n" + str(exc)[:800], case)

    with session, contextlib.suppress(Unsatisfiable):  # an operation with nothing to make negative
        run()


def test_schema_fuzz(proxy: ProxyProcess, request: pytest.FixtureRequest) -> None:
    opened = requests.get(proxy.root + "/openapi.json", timeout=120)  # no key: the document is public
    assert opened.status_code == 200, opened.text
    assert requests.get(proxy.root + "/v1/openapi.json", timeout=60).json() == opened.json()
    schema = schemathesis.openapi.from_dict(fuzzable(opened.json()))
    operations = [result.ok() for result in schema.get_all_operations()]
    figures = Figures(operations=len(operations))
    deadline = time.monotonic() + SECONDS
    while True:
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                fuzz_operation(operation, mode, proxy.root, figures)
        if time.monotonic() >= deadline:
            break

    # healthy afterwards: alive, and a real call through each model still answers
    assert requests.get(proxy.root + "/health/liveliness", timeout=10).json() == {"status": "healthy"}
    client = OpenAI(base_url=proxy.url, api_key=MASTER, max_retries=0)
    for model in MODELS:
        assert client.responses.create(model=model, input="still there?").status == "completed"

    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("\n" + figures.summary())
    print(figures.summary())
    found = figures.server_errors + figures.bad_errors + figures.schema_violations
    assert not found, f"{figures.summary()}\n" + "\n".join(found[:10])
    assert figures.statuses[200] > 0 and figures.inputs > figures.operations * 2
