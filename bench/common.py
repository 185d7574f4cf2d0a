"""Paths, constants and logging shared by the benchmark's modules."""

from __future__ import annotations

import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
CACHE = Path(os.environ.get("LLMRELAY_BENCH_CACHE") or Path.home() / ".cache" / "llmrelay-bench")
CORES = os.cpu_count() or 1
CLK_TCK = os.sysconf("SC_CLK_TCK")
HOST = "127.0.0.1"
API_KEY = "sk-bench"  # what the upstream is sent; nginx ignores it
# The gateways' own key: LiteLLM refuses to start without a strong one, and llmrelay gets the
# same so both do the auth check.
MASTER_KEY = "sk-" + secrets.token_hex(32)
DELTAS = 40
PORTKEY_NODE_SERVER = "1.13.8"  # later @hono/node-server releases buffer Portkey's streamed responses

Json = dict[str, Any]


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
