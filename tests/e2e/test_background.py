"""Background mode run by llmrelay for every provider: poll, cancel, resume, restart, two instances."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import openai
import pytest
from openai import OpenAI

import llmrelay
from llmrelay import Relay
from tests.e2e.proxy_process import ProxyProcess, run_cli, start_proxy, write_config
from tests.e2e.waits import wait_for
from tests.fakes.process import FakeServer

PG_URL = os.environ.get("LLMRELAY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def config(anthropic_fake: FakeServer, openai_fake: FakeServer, **general) -> dict:
    return {
        "model_list": [
            {"model_name": "claude", "litellm_params": {"model": "anthropic/claude-sonnet-4-5", "api_key": "k",
                                                        "api_base": anthropic_fake.url}},
            {"model_name": "gpt", "litellm_params": {"model": "openai/gpt-4o", "api_key": "k",
                                                     "api_base": openai_fake.url}},
        ],
        "general_settings": general,
    }  # fmt: skip


def test_sdk_background_on_a_translated_provider(anthropic_fake: FakeServer) -> None:
    anthropic_fake.reset()
    relay = Relay(store="memory")
    common = {"model": "anthropic/claude-sonnet-4-5", "api_key": "k", "api_base": anthropic_fake.url, "relay": relay}
    r = llmrelay.responses(**common, input="do it later", background=True)
    assert r.status == "queued" and r.background
    done = wait_for(lambda: llmrelay.get_responses(r.id, relay=relay), lambda x: x.status == "completed")
    assert done.output_text == "Echo (turns=1): do it later"
    events = list(llmrelay.get_responses(r.id, stream=True, starting_after=2, relay=relay))
    assert events[0].sequence_number == 3 and events[-1].type == "response.completed"
    plain = llmrelay.responses(**common, input="now")
    with pytest.raises(openai.BadRequestError):
        llmrelay.cancel_responses(plain.id, relay=relay)
    with pytest.raises(openai.BadRequestError):
        llmrelay.responses(**common, input="x", background=True, store=False)


def test_cancel_stops_the_upstream_and_a_late_answer_never_overwrites(anthropic_fake: FakeServer) -> None:
    anthropic_fake.reset()
    relay = Relay(store="memory")
    common = {"model": "anthropic/claude-sonnet-4-5", "api_key": "k", "api_base": anthropic_fake.url, "relay": relay}
    anthropic_fake.enqueue({"delta_delay": 0.3})
    r = llmrelay.responses(**common, input="a b c d e f g h i j", background=True)
    wait_for(lambda: llmrelay.get_responses(r.id, relay=relay), lambda x: x.status == "in_progress")
    cancelled = llmrelay.cancel_responses(r.id, relay=relay)
    assert cancelled.status == "cancelled"
    assert llmrelay.cancel_responses(r.id, relay=relay).status == "cancelled"  # twice: the same answer
    wait_for(lambda: anthropic_fake.requests()[-1], lambda req: req.get("disconnected"))
    assert anthropic_fake.requests()[-1].get("disconnected") is True
    time.sleep(0.5)
    assert llmrelay.get_responses(r.id, relay=relay).status == "cancelled"


@pytest.mark.parametrize("model", ["claude", "gpt"])
def test_stream_resumption_through_the_proxy(
    model: str, anthropic_fake: FakeServer, openai_fake: FakeServer, tmp_path: Path
) -> None:
    anthropic_fake.reset()
    openai_fake.reset()
    with start_proxy("--config", str(write_config(config(anthropic_fake, openai_fake), tmp_path))) as proxy:
        client = OpenAI(base_url=proxy.url, api_key="k", max_retries=0)
        stream = client.responses.create(model=model, input="one two three four five six", background=True,
                                         stream=True)  # fmt: skip
        seen = []
        for event in stream:
            seen.append(event)
            if len(seen) == 5:
                break
        stream.close()  # the connection is lost; the response goes on
        response_id = seen[0].response.id
        rest = list(client.responses.retrieve(response_id, stream=True, starting_after=4))
        assert [e.sequence_number for e in rest] == list(range(5, 5 + len(rest)))
        assert rest[-1].type == "response.completed"
        text = "".join(e.delta for e in seen + rest if e.type == "response.output_text.delta")
        assert text == "Echo (turns=1): one two three four five six"
        assert client.responses.retrieve(response_id).status == "completed"


def test_starting_after_out_of_range_is_a_400(
    anthropic_fake: FakeServer, openai_fake: FakeServer, tmp_path: Path
) -> None:
    anthropic_fake.reset()
    with start_proxy("--config", str(write_config(config(anthropic_fake, openai_fake), tmp_path))) as proxy:
        client = OpenAI(base_url=proxy.url, api_key="k", max_retries=0)
        job = client.responses.create(model="claude", input="one two", background=True)
        wait_for(lambda: client.responses.retrieve(job.id), lambda r: r.status == "completed")
        events = list(client.responses.retrieve(job.id, stream=True))
        last = events[-1].sequence_number
        assert events[-1].type == "response.completed"
        assert list(client.responses.retrieve(job.id, stream=True, starting_after=last)) == []
        for after in (last + 1, last + 100, -2):
            with pytest.raises(openai.BadRequestError) as exc:
                list(client.responses.retrieve(job.id, stream=True, starting_after=after))
            assert exc.value.body["param"] == "starting_after" and str(after) in exc.value.message


def running_job(
    anthropic_fake: FakeServer, openai_fake: FakeServer, tmp_path: Path, lease: str
) -> tuple[ProxyProcess, str, Callable[[], ProxyProcess]]:
    """A proxy on a SQLite file running a background job that streams slowly: the proxy, the
    job's id, and how to start another proxy on the same file."""
    anthropic_fake.reset()
    cfg = write_config(config(anthropic_fake, openai_fake), tmp_path)
    store, env = str(tmp_path / "jobs.db"), {"LLMRELAY_JOB_LEASE": lease}
    proxy = start_proxy("--config", str(cfg), store=store, env=env)
    anthropic_fake.enqueue({"delta_delay": 1.0})
    client = OpenAI(base_url=proxy.url, api_key="k", max_retries=0)
    job = client.responses.create(model="claude", input="a b c d e f g h", background=True)
    wait_for(lambda: client.responses.retrieve(job.id), lambda r: r.status == "in_progress")
    return proxy, job.id, lambda: start_proxy("--config", str(cfg), store=store, env=env)


def test_a_killed_process_leaves_no_response_in_progress(
    anthropic_fake: FakeServer, openai_fake: FakeServer, tmp_path: Path
) -> None:
    proxy, job_id, restart = running_job(anthropic_fake, openai_fake, tmp_path, lease="4")
    proxy.process.send_signal(signal.SIGKILL)
    proxy.process.wait()
    with restart() as again:
        client = OpenAI(base_url=again.url, api_key="k", max_retries=0)
        # a stream resumed while the dead job still looks alive ends, once its lease is out, as failed
        resumed = list(client.responses.retrieve(job_id, stream=True, starting_after=0))
        assert resumed[-1].type == "response.failed" and "stopped" in resumed[-1].response.error.message
        assert [e.sequence_number for e in resumed] == list(range(1, 1 + len(resumed)))
        got = client.responses.retrieve(job_id)
        assert got.status == "failed" and "stopped" in got.error.message
        again_resumed = list(client.responses.retrieve(job_id, stream=True, starting_after=0))
        assert [e.type for e in again_resumed] == [e.type for e in resumed]


def test_a_stopped_instance_records_its_running_jobs_failed_at_once(
    anthropic_fake: FakeServer, openai_fake: FakeServer, tmp_path: Path
) -> None:
    # a lease of 10 minutes: nothing here waits for one to run out
    proxy, job_id, restart = running_job(anthropic_fake, openai_fake, tmp_path, lease="600")
    proxy.process.send_signal(signal.SIGTERM)
    assert proxy.process.wait(timeout=15) == 0
    with restart() as again:
        client = OpenAI(base_url=again.url, api_key="k", max_retries=0)
        got = client.responses.retrieve(job_id)
        assert got.status == "failed" and "shut down" in got.error.message
        events = list(client.responses.retrieve(job_id, stream=True, starting_after=0))
        assert events[-1].type == "response.failed" and "shut down" in events[-1].response.error.message


@pytest.mark.parametrize("lease", ["3", "ten"])
def test_a_job_lease_the_renewal_loop_cannot_keep_alive_is_a_startup_error(
    lease: str, anthropic_fake: FakeServer, openai_fake: FakeServer, tmp_path: Path
) -> None:
    cfg = write_config(config(anthropic_fake, openai_fake), tmp_path)
    done = run_cli("--config", str(cfg), env={"LLMRELAY_JOB_LEASE": lease})
    assert done.returncode == 2
    assert "LLMRELAY_JOB_LEASE" in done.stderr and "Traceback" not in done.stderr


def test_two_instances_on_postgres_get_and_cancel_a_job_running_on_the_other(
    anthropic_fake: FakeServer, openai_fake: FakeServer, tmp_path: Path
) -> None:
    anthropic_fake.reset()
    cfg = write_config(config(anthropic_fake, openai_fake, database_url=PG_URL), tmp_path)
    with start_proxy("--config", str(cfg), store=None) as a, start_proxy("--config", str(cfg), store=None) as b:
        on_a = OpenAI(base_url=a.url, api_key="k", max_retries=0)
        on_b = OpenAI(base_url=b.url, api_key="k", max_retries=0)
        anthropic_fake.enqueue({"delta_delay": 0.5})
        job = on_a.responses.create(model="claude", input="a b c d e f g h i j k l", background=True)
        assert (
            wait_for(lambda: on_b.responses.retrieve(job.id), lambda r: r.status == "in_progress").status
            == "in_progress"
        )
        assert on_b.responses.cancel(job.id).status == "cancelled"
        started = time.monotonic()
        wait_for(lambda: anthropic_fake.requests()[-1], lambda req: req.get("disconnected"), timeout=8)
        assert anthropic_fake.requests()[-1].get("disconnected") is True  # A stopped its upstream call
        assert time.monotonic() - started < 1.5  # told over LISTEN/NOTIFY, not found by a status poll
        assert on_a.responses.retrieve(job.id).status == "cancelled"
        # B follows the events of a job A runs, live, to the end
        anthropic_fake.enqueue({"delta_delay": 0.2})
        streamed = on_a.responses.create(model="claude", input="one two three four", background=True, stream=True)
        first = next(iter(streamed))
        events = list(on_b.responses.retrieve(first.response.id, stream=True, starting_after=0))
        assert events[0].sequence_number == 1 and events[-1].type == "response.completed"
        assert events[-1].response.output_text == "Echo (turns=1): one two three four"
        streamed.close()
