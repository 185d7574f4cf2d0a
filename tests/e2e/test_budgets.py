"""Budgets enforced before any upstream call, reset every budget_duration; spend exact across
instances on Postgres."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI

from llmrelay.gateway.directory import TTL as KEY_TTL
from llmrelay.gateway.spend import FLUSH as SPEND_FLUSH
from tests.e2e.gateway_helpers import MASTER, PG_URL, ok, until
from tests.e2e.proxy_process import ProxyProcess, start_proxy, write_config
from tests.fakes.process import FakeServer

PRICE = 0.001  # USD per token, in and out


def _config(fake: FakeServer) -> str:
    params = {"model": "anthropic/claude-sonnet-4-5", "api_key": "k", "api_base": fake.url,
              "input_cost_per_token": PRICE, "output_cost_per_token": PRICE}  # fmt: skip
    return {"model_list": [{"model_name": "claude", "litellm_params": params}],
            "general_settings": {"master_key": MASTER, "database_url": PG_URL}}  # fmt: skip


def _refused(client: OpenAI) -> bool:
    try:
        client.responses.create(model="claude", input="more")
    except openai.BadRequestError as exc:
        assert exc.code == "budget_exceeded" and exc.body["type"] == "budget_exceeded"  # type: ignore[index]
        return True
    return False


def test_a_stream_and_a_background_job_cross_a_budget(anthropic_fake: FakeServer, tmp_path: Path) -> None:
    config = str(write_config(_config(anthropic_fake), tmp_path))
    with start_proxy("--config", config, store=None) as proxy:
        key = ok(proxy, "/key/generate", {"max_budget": 0.005})["key"]
        client = OpenAI(base_url=proxy.url, api_key=key, max_retries=0)
        with client.responses.stream(model="claude", input="a stream of several words") as stream:
            final = stream.get_final_response()
        assert final.usage is not None and final.usage.total_tokens * PRICE > 0.005
        assert _refused(client)  # the stream's terminal event charged it

        key = ok(proxy, "/key/generate", {"max_budget": 0.005})["key"]
        client = OpenAI(base_url=proxy.url, api_key=key, max_retries=0)
        job = client.responses.create(model="claude", input="a background job of several words", background=True)
        until(lambda: client.responses.retrieve(job.id).status == "completed")
        assert _refused(client)  # charged when the job ended, before its status reads completed
        info = ok(proxy, "/key/info?key=" + key)["info"]
        assert info["spend"] == pytest.approx(client.responses.retrieve(job.id).usage.total_tokens * PRICE)  # type: ignore[union-attr]


def test_a_team_budget_binds_every_key_and_budgets_reset(anthropic_fake: FakeServer, tmp_path: Path) -> None:
    config = str(write_config(_config(anthropic_fake), tmp_path))
    with start_proxy("--config", config, store=None) as proxy:
        team = ok(proxy, "/team/new", {"max_budget": 0.001})["team_id"]
        first, second = (ok(proxy, "/key/generate", {"team_id": team})["key"] for _ in range(2))
        OpenAI(base_url=proxy.url, api_key=first, max_retries=0).responses.create(model="claude", input="hi there")
        with pytest.raises(openai.BadRequestError) as exc:
            OpenAI(base_url=proxy.url, api_key=second, max_retries=0).responses.create(model="claude", input="x")
        assert exc.value.code == "budget_exceeded" and team in exc.value.message

        key = ok(proxy, "/key/generate", {"max_budget": 0.001, "budget_duration": "2s"})["key"]
        client = OpenAI(base_url=proxy.url, api_key=key, max_retries=0)
        client.responses.create(model="claude", input="hi there")
        assert _refused(client)
        until(lambda: not _refused(client), timeout=10)  # the next window starts from 0


def test_spend_adds_up_exactly_across_two_instances(anthropic_fake: FakeServer, tmp_path: Path) -> None:
    config = str(write_config(_config(anthropic_fake), tmp_path))
    with start_proxy("--config", config, store=None) as a, start_proxy("--config", config, store=None) as b:
        team = ok(a, "/team/new", {})["team_id"]
        key = ok(a, "/key/generate", {"team_id": team})["key"]

        def one(n: int) -> float:
            client = OpenAI(base_url=(a if n % 2 else b).url, api_key=key, max_retries=0)
            raw = client.responses.with_raw_response.create(model="claude", input="word " * (n % 7 + 1))
            return float(raw.headers["x-llmrelay-response-cost"])

        with ThreadPoolExecutor(8) as pool:
            costs = list(pool.map(one, range(60)))
        total = sum(costs)
        until(lambda: ok(b, "/key/info?key=" + key)["info"]["spend"] == pytest.approx(total, abs=1e-9))
        team_spend = ok(a, f"/team/info?team_id={team}")["team_info"]["spend"]
        assert team_spend == pytest.approx(total, abs=1e-9)


def _row(proxy: ProxyProcess, key: str, response_id: str) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []

    def logged() -> bool:
        rows[:] = ok(proxy, f"/spend/logs?api_key={key}&request_id={response_id}")
        return bool(rows)

    until(logged)
    return rows[0]


def test_a_stream_cut_short_and_a_cancelled_job_are_charged_for_what_they_produced(
    anthropic_fake: FakeServer, tmp_path: Path
) -> None:
    config = str(write_config(_config(anthropic_fake), tmp_path))
    words = " ".join(f"word{n}" for n in range(40))
    with start_proxy("--config", config, store=None) as proxy:
        key = ok(proxy, "/key/generate", {})["key"]
        client = OpenAI(base_url=proxy.url, api_key=key, max_retries=0)

        anthropic_fake.enqueue({"text": words, "delta_delay": 0.2})
        deltas, response_id = [], ""
        with client.responses.create(model="claude", input="a stream the client leaves", stream=True) as stream:
            for event in stream:
                if event.type == "response.created":
                    response_id = event.response.id
                if event.type == "response.output_text.delta":
                    deltas.append(event.delta)
                if len(deltas) == 3:
                    break  # the client goes away mid-answer
        row = _row(proxy, key, response_id)
        produced = len("".join(deltas))
        assert row["status"] == "cancelled" and row["output_tokens"] >= produced // 4 > 0
        assert row["output_tokens"] < len(words) // 4  # what was produced, not the whole answer
        assert row["input_tokens"] > 0 and row["cost"] == pytest.approx(row["total_tokens"] * PRICE)

        anthropic_fake.enqueue({"text": words, "delta_delay": 0.2})
        with client.responses.create(model="claude", input="a job cancelled", background=True, stream=True) as job:
            for event in job:
                if event.type == "response.created":
                    response_id = event.response.id
                if event.type == "response.output_text.delta":
                    break  # it has produced something: cancel it
        assert client.responses.cancel(response_id).status == "cancelled"
        row = _row(proxy, key, response_id)
        assert row["status"] == "cancelled" and 0 < row["output_tokens"] < len(words) // 4
        assert row["cost"] == pytest.approx(row["total_tokens"] * PRICE)
        assert ok(proxy, "/key/info?key=" + key)["info"]["spend"] > 0


def test_a_budget_crossed_on_one_instance_binds_the_other_within_the_stated_lag(
    anthropic_fake: FakeServer, tmp_path: Path
) -> None:
    """README: enforcement reads spend through a 1 s cache plus this instance's own charges,
    written every 0.2 s; so past 1.2 s every instance refuses a key over its budget."""
    config = str(write_config(_config(anthropic_fake), tmp_path))
    with start_proxy("--config", config, store=None) as a, start_proxy("--config", config, store=None) as b:
        key = ok(a, "/key/generate", {"max_budget": 0.002})["key"]
        on_a, on_b = (OpenAI(base_url=p.url, api_key=key, max_retries=0) for p in (a, b))
        # b reads the key (under budget) without spending: a spend of b's own, flushed every 0.2 s,
        # could reach the store before a reads the key, and a would refuse what it should cross with
        with pytest.raises(openai.NotFoundError):
            on_b.responses.retrieve("resp_none")
        on_a.responses.create(model="claude", input="a crosses the budget with this")
        assert _refused(on_a)  # at once where it was crossed
        time.sleep(SPEND_FLUSH + KEY_TTL + 0.3)
        assert _refused(on_b)
