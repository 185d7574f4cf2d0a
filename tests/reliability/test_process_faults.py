"""Process faults under traffic: kill -9 of one of two instances sharing a Postgres store, and
SIGTERM during streams. The history checker proves nothing acknowledged was lost, nothing
is stuck, nothing leaked to the other key and no chain lost its parent.

A killed process's own background job reading `failed` once its lease is out is
tests/e2e/test_background.py's test_a_killed_process_leaves_no_response_in_progress; here
it happens in the middle of mixed traffic from two keys on two instances."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.e2e.private_postgres import PrivatePostgres
from tests.fakes.process import FakeServer
from tests.reliability import figures
from tests.reliability.cluster import cluster_config, mint_keys, settle_and_check, start, start_two, traffic
from tests.reliability.history import History


def test_kill_9_of_one_of_two_instances_loses_nothing_acknowledged(
    pg: PrivatePostgres, fake: FakeServer, tmp_path: Path
) -> None:
    config = cluster_config(pg, fake, tmp_path)
    history = History()
    # slow replies, so that streams and background jobs are under way when the kill comes
    fake.enqueue([{"delta_delay": 0.15}] * 12)
    a, b = start_two(config)
    with a, b:
        keys = mint_keys(a)
        with traffic(history, [a.url, b.url], keys):
            time.sleep(3.0)
            a.process.send_signal(signal.SIGKILL)
            a.process.wait()
            figures.add("faults injected")
            time.sleep(1.0)
        killed_calls = len(history.calls)
        with start(config) as again, traffic(history, [again.url, b.url], keys):  # the restart run
            time.sleep(1.5)
        verdict = settle_and_check(history, pg, b.url)
    kinds = {c.kind for c in history.acknowledged()}
    assert kinds == {"plain", "stream", "background", "chain"}
    assert killed_calls > 10 and len(history.calls) > killed_calls
    assert not [c for c in history.calls if c.error and c.error.isdigit()]  # no HTTP error at all
    assert verdict.clean, verdict


def test_sigterm_during_streams_ends_them_cleanly(pg: PrivatePostgres, fake: FakeServer, tmp_path: Path) -> None:
    config = cluster_config(pg, fake, tmp_path)
    history = History()
    fake.enqueue([{"delta_delay": 0.1}] * 200)  # every stream takes about a second
    with start(config) as proxy:
        keys = mint_keys(proxy)
        with traffic(history, [proxy.url], keys, threads=4):
            time.sleep(1.5)
            started = time.monotonic()
            proxy.process.send_signal(signal.SIGTERM)
            assert proxy.process.wait(timeout=15) == 0
            figures.add("faults injected")
            drained = time.monotonic() - started
        with start(config) as again:
            verdict = settle_and_check(history, pg, again.url)
    # Every call under way when the signal came finished: none was cut (only calls sent after
    # the listener closed were refused).
    cut = [c for c in history.calls if c.response_id and c.status is None]
    assert not cut, cut
    assert not [c for c in history.calls if c.error and c.error.isdigit()]
    assert drained < 10
    assert verdict.clean, verdict
