"""Mixed client traffic (plain, stream, background, chain) recorded into a `History`.

Threads of openai SDK clients pick an instance and a kind of call at random (seeded), until
told to stop. Every call is bounded by the client's timeout: a hang fails the run.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
from openai import OpenAI

from tests.reliability import figures
from tests.reliability.history import Call, History

KINDS = ("plain", "stream", "background", "chain")
CLIENT_TIMEOUT = 20.0  # seconds: far above any answer here; reaching it is a hang


def one_call(client: OpenAI, key: str, kind: str, model: str, history: History) -> Call:
    parent = history.last_acknowledged(key) if kind == "chain" else None
    call = Call(key=key, kind=kind if parent or kind != "chain" else "plain", parent=parent)
    try:
        if call.kind == "stream":
            with client.responses.create(model=model, input="one two three", stream=True) as events:
                for event in events:
                    if event.type == "response.created":
                        call.response_id = event.response.id
                    if event.type in ("response.completed", "response.failed", "response.incomplete"):
                        call.status = event.response.status
        else:
            extra = {"previous_response_id": parent} if parent else {}
            response = client.responses.create(
                model=model, input="one two three", background=call.kind == "background", **extra
            )
            call.response_id, call.status = response.id, response.status
    except openai.APIStatusError as err:
        call.error, call.detail = str(err.status_code), err.message
        figures.add("5xx seen", err.status_code >= 500)
    except (openai.APIConnectionError, httpx.HTTPError) as err:  # an instance killed under the call
        call.error = type(err).__name__
    figures.add("responses checked")
    return history.record(call)


def drive(
    history: History,
    urls: Sequence[str],
    keys: Sequence[str],
    model: str,
    stop: threading.Event,
    threads: int = 6,
    seed: int = 16,
) -> None:
    """Run `threads` clients until `stop` is set; each makes one call at least."""
    clients = {
        key: [OpenAI(base_url=url, api_key=key, max_retries=0, timeout=CLIENT_TIMEOUT) for url in urls] for key in keys
    }

    def client_loop(n: int) -> None:
        rng = random.Random(seed + n)
        key = keys[n % len(keys)]
        while True:
            one_call(rng.choice(clients[key]), key, rng.choice(KINDS), model, history)
            if stop.is_set():
                return

    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(client_loop, n) for n in range(threads)]:
            future.result()
