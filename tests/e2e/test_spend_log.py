"""The spend log: one row per request, complete after a burst, and a stated loss bound when the
process is killed with kill -9 (the calls that ended in the last FLUSH seconds, plus the batch
being written then; checked here with a 1 s bound)."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
from openai import OpenAI

from tests.e2e.gateway_helpers import MASTER, PG_URL, ok
from tests.e2e.proxy_process import start_proxy, write_config

BOUND = 1.0  # seconds: the calls that finished this long before a kill -9 are all in the log
PRICE = 0.000001


def _config(tmp_path: Path) -> str:
    params = {"model": "mock/demo", "input_cost_per_token": PRICE, "output_cost_per_token": PRICE}
    settings = {"master_key": MASTER, "database_url": PG_URL}
    config = {"model_list": [{"model_name": "demo", "litellm_params": params}], "general_settings": settings}
    return str(write_config(config, tmp_path))


def test_every_request_of_a_burst_is_logged(tmp_path: Path) -> None:
    with start_proxy("--config", _config(tmp_path), store=None) as proxy:
        team = ok(proxy, "/team/new", {})["team_id"]
        key = ok(proxy, "/key/generate", {"team_id": team, "key_alias": "burst"})["key"]
        client = OpenAI(base_url=proxy.url, api_key=key, max_retries=0)

        def one(n: int) -> tuple[str, float]:
            raw = client.responses.with_raw_response.create(model="demo", input=f"request {n}")
            return raw.parse().id, float(raw.headers["x-llmrelay-response-cost"])

        with ThreadPoolExecutor(8) as pool:
            done = dict(pool.map(one, range(1000)))
        rows = ok(proxy, f"/spend/logs?api_key={key}&limit=5000")
        assert len(rows) == 1000 and {r["request_id"] for r in rows} == set(done)
        row = next(r for r in rows if r["request_id"] == next(iter(done)))
        assert row["team_id"] == team and row["key_alias"] == "burst" and row["model"] == "demo"
        assert row["status"] == "completed" and row["cost"] == pytest.approx(done[row["request_id"]])
        assert row["input_tokens"] > 0 and row["total_tokens"] == row["input_tokens"] + row["output_tokens"]
        assert row["prompt"] is None  # no prompts unless store_prompts_in_spend_logs
        report = ok(proxy, "/global/spend/report?group_by=team")["data"]
        mine = next(e for e in report if e["team_id"] == team)
        assert mine["requests"] == 1000 and mine["spend"] == pytest.approx(sum(done.values()))
        for group in ("key", "model", "day"):
            assert ok(proxy, f"/global/spend/report?group_by={group}")["data"]


def test_a_kill_9_loses_at_most_the_stated_bound(tmp_path: Path) -> None:
    config = _config(tmp_path)
    proxy = start_proxy("--config", config, store=None)
    key = ok(proxy, "/key/generate", {})["key"]
    client = OpenAI(base_url=proxy.url, api_key=key, max_retries=0)
    finished: list[tuple[str, float]] = []
    stop = threading.Event()

    def burst() -> None:
        while not stop.is_set():
            try:
                finished.append((client.responses.create(model="demo", input="x").id, time.monotonic()))
            except openai.APIConnectionError:
                return

    threads = [threading.Thread(target=burst) for _ in range(6)]
    for t in threads:
        t.start()
    while len(finished) < 300 or time.monotonic() - finished[0][1] < 2 * BOUND:  # well into the burst
        time.sleep(0.01)
    killed_at = time.monotonic()
    os.kill(proxy.process.pid, signal.SIGKILL)
    stop.set()
    for t in threads:
        t.join()
    proxy.process.wait()
    with start_proxy("--config", config, store=None) as reader:
        rows = [r["request_id"] for r in ok(reader, f"/spend/logs?api_key={key}&limit=10000")]
    logged = set(rows)
    assert len(rows) == len(logged)  # no call is logged twice
    must = {rid for rid, at in finished if at < killed_at - BOUND}
    assert must and must <= logged
    lost = {rid for rid, _ in finished} - logged
    print(f"kill -9 after {len(finished)} calls: {len(lost)} not logged")
