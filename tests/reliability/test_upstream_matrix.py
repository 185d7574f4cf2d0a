"""The upstream fault matrix: every fault of `faultproxy` (and 429/500/529 bursts from the
fakes' own control) against a translated (Anthropic) and a native (OpenAI) upstream, streamed
and not, through the real proxy with the openai SDK as client.

For each cell: what the client saw (a status, or a stream's terminal event), that it saw it
within the configured timeouts, and what the store holds afterwards (the stream's record in
the state its terminal event announced; nothing left queued or in progress).

Extends tests/e2e/test_upstream_faults.py, which covers faults the fakes script at the HTTP
level on every adapter (garbage JSON bodies, truncation, `hang`, `hang_after_events`, an
unreachable non-streamed deployment); this matrix injects them at the TCP level instead.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI

from tests.e2e.proxy_process import ProxyProcess, start_proxy, write_config
from tests.fakes.process import FakeServer, reset_around
from tests.reliability import figures
from tests.reliability.faultproxy import MODES, FaultLoop, FaultProxy, fault_loop

TIMEOUT = 1.0  # seconds: the deployments' timeout and stream_timeout
RETRIES = 2
PROVIDERS = {"gpt": "openai/gpt-4o", "claude": "anthropic/claude-sonnet-4-5"}
FAULTS = [m for m in MODES if m != "pass"]

# What the client sees, per fault: a status, or a stream's terminal event after response.created.
EXPECTED: dict[str, tuple[str, str]] = {
    #              non-stream   stream
    "refuse": ("502", "502"),
    "hang_headers": ("504", "504"),
    "hang_mid": ("504", "response.failed"),
    "reset_mid": ("502", "response.failed"),
    "garbage": ("502", "502"),
    "drip": ("200", "response.completed"),
}
BURSTS = {  # a burst the deployment's retries absorb, and one longer than its retries
    ("429", RETRIES): ("200", "response.completed"),
    ("500", RETRIES): ("200", "response.completed"),
    ("529", RETRIES): ("200", "response.completed"),
    ("429", RETRIES + 1): ("429", "429"),
    ("500", RETRIES + 1): ("500", "500"),
    ("529", RETRIES + 1): ("503", "503"),  # Anthropic's "overloaded"; OpenAI's 529 passes as is
}


@pytest.fixture(scope="module")
def faults() -> Iterator[FaultLoop]:
    with fault_loop() as loop:
        yield loop


@pytest.fixture(scope="module")
def fakes(openai_fake: FakeServer, anthropic_fake: FakeServer) -> dict[str, FakeServer]:
    return {"gpt": openai_fake, "claude": anthropic_fake}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("matrix") / "store.db"


@pytest.fixture(scope="module")
def throughs(faults: FaultLoop, fakes: dict[str, FakeServer]) -> dict[str, FaultProxy]:
    """A fault proxy per deployment `<provider>-<mode>`."""
    return {f"{name}-{mode}": faults.proxy(fakes[name].port, mode) for name in PROVIDERS for mode in MODES}


@pytest.fixture(scope="module")
def proxy(
    throughs: dict[str, FaultProxy], fakes: dict[str, FakeServer], store: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    model_list: list[dict[str, Any]] = []
    for deployment, through in throughs.items():
        name, _, mode = deployment.partition("-")
        base = through.url + fakes[name].base_path
        # retries only where bursts are tried: a fault cell's time is one try's
        limits = {"timeout": TIMEOUT, "stream_timeout": TIMEOUT, "num_retries": RETRIES if mode == "pass" else 0}
        params = {"model": PROVIDERS[name], "api_key": "k", "api_base": base, **limits}
        model_list.append({"model_name": deployment, "litellm_params": params})
    # Each cell meets its fault afresh: a deployment cooled down by the cell before would
    # answer without calling its upstream.
    settings = {"router_settings": {"disable_cooldowns": True}}
    config = write_config({"model_list": model_list, **settings}, tmp_path_factory.mktemp("matrix-config"))
    with start_proxy("--config", str(config), store=str(store)) as p:
        yield p


@pytest.fixture(autouse=True)
def clean(fakes: dict[str, FakeServer]) -> Iterator[None]:
    yield from reset_around(fakes.values())


def stored(store: Path) -> dict[str, str]:
    with sqlite3.connect(store) as db:
        return dict(db.execute("SELECT id, status FROM responses").fetchall())


def attempt(client: OpenAI, model: str, stream: bool) -> tuple[str, str | None]:
    """What the client saw (a status, or the stream's terminal event) and the response's id."""
    try:
        if not stream:
            response = client.responses.create(model=model, input="hello")
            return "200", response.id
        with client.responses.stream(model=model, input="hello") as events:
            seen = list(events)
        assert seen[0].type == "response.created"
        return seen[-1].type, seen[-1].response.id
    except openai.APIStatusError as err:
        assert set(err.body) >= {"message", "type", "code"}  # OpenAI's error shape
        return str(err.status_code), None


def check_cell(client: OpenAI, store: Path, model: str, stream: bool, expected: str) -> None:
    before = stored(store)
    started = time.monotonic()
    seen, response_id = attempt(client, model, stream)
    elapsed = time.monotonic() - started
    figures.add("cells tried")
    figures.add("responses checked")
    figures.add("5xx seen", seen.startswith("5"))
    assert seen == expected
    # never a hang: each try is bounded by the timeout, and a stream by the same per read (the
    # margin is for a loaded machine; a timeout not enforced would run into the client's 30 s)
    assert elapsed < (RETRIES + 1) * TIMEOUT + 10
    after = stored(store)
    assert not [rid for rid, status in after.items() if status in ("queued", "in_progress")]
    if response_id is not None:
        status = {"200": "completed"}.get(seen, seen.removeprefix("response."))
        assert after[response_id] == status
        assert client.responses.retrieve(response_id).status == status
    else:
        assert set(after) == set(before)  # a refused call leaves nothing behind


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_an_upstream_fault(
    proxy: ProxyProcess, throughs: dict[str, FaultProxy], store: Path, provider: str, fault: str, stream: bool
) -> None:
    client = OpenAI(base_url=proxy.url, api_key="k", max_retries=0, timeout=30)
    through = throughs[f"{provider}-{fault}"]
    before = through.faults
    check_cell(client, store, f"{provider}-{fault}", stream, EXPECTED[fault][stream])
    if fault not in ("refuse", "drip"):
        assert through.faults > before
    figures.add("faults injected", max(through.faults - before, 1))
    assert "Traceback" not in proxy.output()


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("burst", list(BURSTS), ids=[f"{s}x{n}" for s, n in BURSTS])
@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_an_upstream_error_burst(
    proxy: ProxyProcess, fakes: dict[str, FakeServer], store: Path, provider: str, burst: tuple[str, int], stream: bool
) -> None:
    status, count = burst
    fakes[provider].enqueue([{"status": int(status), "headers": {"retry-after-ms": "10"}}] * count)
    client = OpenAI(base_url=proxy.url, api_key="k", max_retries=0, timeout=30)
    expected = BURSTS[burst][stream]
    if provider == "gpt" and expected == "503":
        expected = "529"
    check_cell(client, store, f"{provider}-pass", stream, expected)
    assert len(fakes[provider].requests()) == min(count + 1, RETRIES + 1)
    figures.add("faults injected", count)
