"""The soak, short: mixed requests through two workers, memory and descriptors sampled as it
goes; `tests/reliability/run --soak` runs it with 1,000,000 requests."""

from __future__ import annotations

import os

from tests.reliability import figures
from tests.reliability.soak import LIMIT, run

LONG = os.environ.get("LLMRELAY_RELIABILITY") == "long"
REQUESTS = int(os.environ.get("LLMRELAY_SOAK_REQUESTS", "100000" if LONG else "10000"))


def test_a_short_soak_grows_neither_memory_nor_descriptors() -> None:
    soak = run(REQUESTS, every=REQUESTS // 10)
    figures.add("inputs tried", soak.requests)
    figures.add("responses checked", soak.requests)
    assert soak.requests == REQUESTS
    assert not soak.errors, soak.errors
    rss, fds = soak.growth()
    print(f"soak: {soak.requests} requests, growth after warm-up: rss {rss:+.1%}, fds {fds:+.1%}")
    assert rss < LIMIT and fds < LIMIT, [(s.requests, s.rss_kb, s.fds) for s in soak.samples]
