"""Moving a call to another deployment: after a failed call (`recover`), and mid-stream,
where a stream that breaks goes on elsewhere (`continued_stream`).

A leg's failure (a cut connection, a stall past `stream_timeout`, a garbled frame, an error
event, an end without a terminal event) goes to the router like any failed call; where it
says to go next, the stream continues with what the client was shown as an assistant prefix
(router/splice.py makes the legs one stream). Used only when a retry or fallback is left, or
when the routing strategy measures streams (their first token, their end).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import aiohttp
import openai

from . import errors, items
from .http_client import Response
from .providers.base import Adapter, Call, StreamTranslator
from .providers.registry import Deployment, require_key
from .providers.support import strip_unsupported
from .router.splice import BROKEN, Splice
from .streaming.events import StreamEvent
from .streaming.sse import SSEDecoder
from .transport import upstream_failure
from .upstream import Garbled, describe, frames, translate

if TYPE_CHECKING:
    from .relay import Relay
    from .router import Router

log = logging.getLogger("llmrelay")


async def recover(relay: Relay, call: Call, err: openai.APIError) -> None:
    """After a failed call: move it where the router's retries and fallbacks say, or raise `err`."""
    if relay.router is None:
        raise err
    if call.failover is None:
        call.failover = relay.router.failover(str(call.params["model"]), call.deployment, call.retries)
    step = await call.failover.next(call.deployment, err)
    if step is None:
        raise err
    dep, wait = step
    if wait:
        await asyncio.sleep(wait)
    await move(relay, call, dep)


async def move(relay: Relay, call: Call, dep: Deployment) -> None:
    """Point a call at another deployment: its own key, params and timeouts; a history the
    failed upstream held natively is replayed from the store instead."""
    call.deployment = dep
    require_key(dep)
    if support := getattr(relay.adapter(dep), "support", None):
        drop = dep.extra.get("drop_params")
        strip_unsupported(call.params, support, drop=relay.drop_params if drop is None else bool(drop))
    call.timeout, call.stream_timeout = relay._timeouts({}, dep)
    if call.upstream_previous_id:
        prev_id = str(call.params["previous_response_id"])
        previous = (call.memory or {}).get(prev_id) or await relay.store.get(prev_id, call.owner)
        call.upstream_previous_id = None
        if previous is not None:
            call.context = await relay._history(previous, call.owner)


async def continued_stream(relay: Relay, call: Call, adapter: Adapter, resp: Response) -> AsyncIterator[StreamEvent]:
    """`_relay_stream` where a broken stream (cut, stalled, garbled, an error event, an end
    without a terminal event) goes on at the next deployment or fallback the router gives,
    as one stream to the client (router/splice.py)."""
    splice = Splice()
    request_input = items.as_items(call.params.get("input") or [])
    router = relay.router
    assert router is not None
    try:
        async for event in _legs(relay, router, call, adapter, resp, splice, request_input):
            yield event
    finally:
        if call.started is not None:  # the client went away mid-stream
            router.finished(call, ok=False)


async def _legs(
    relay: Relay,
    router: Router,
    call: Call,
    adapter: Adapter,
    resp: Response,
    splice: Splice,
    request_input: list[dict[str, Any]],
) -> AsyncIterator[StreamEvent]:
    while True:
        waiting = call.started is not None  # for the first token, which latency-based routing measures
        translator = adapter.stream_translator(call)
        held: list[StreamEvent] = []  # the batch that ended the leg badly, not sent yet
        failure: openai.APIError | None = None
        try:
            async for batch in _leg(call, adapter, translator, resp):
                if isinstance(batch, openai.APIError):
                    failure = batch
                    break
                if batch and batch[-1].type in BROKEN:
                    held, failure = batch, _broken(batch[-1], call.deployment)
                    break
                if waiting and any(e.type.endswith(".delta") for e in batch):
                    waiting = False
                    router.first_token(call)
                if batch and batch[-1].terminal and call.started is not None:
                    response = translator.response or batch[-1].data.get("response") or {}
                    router.finished(call, ok=True, tokens=total_tokens(response))
                if splice.leg == 0:
                    for event in batch:
                        if event.terminal and translator.response is not None:
                            await relay._save(call, translator.response, translator.upstream_id)
                        splice.keep(event)
                        yield event
                else:
                    for event in [e for ev in batch for e in splice.rewrite(ev)]:
                        if event.terminal:
                            await relay._save(call, event.data["response"], translator.upstream_id)
                        yield event
                if batch and batch[-1].terminal:
                    return
        finally:
            resp.close()  # a leg that ended well was read to its end; one that broke is dropped
        if failure is None:
            return
        if call.started is not None:
            router.finished(call, ok=False)
        shown = splice.broke(translator.response)
        log.warning("stream from %s broke (%s); trying to continue it", call.deployment.id, failure)
        try:
            await recover(relay, call, failure)
            call.params["input"] = request_input + shown.as_input()
            resp = await relay._open(call, stream=True)
        except openai.APIError:  # nowhere left to go: the stream fails as it broke
            if splice.leg == 0:
                tail = held or translator.fail(str(failure.message))
                response = translator.response
            else:
                tail = splice.fail(str(failure.message))
                response = tail[-1].data["response"]
            for event in tail:
                if event.terminal and response is not None:
                    await relay._save(call, response, translator.upstream_id)
                yield event
            return
        adapter = relay.adapter(call.deployment)
        splice.next_leg()


async def _leg(
    call: Call, adapter: Adapter, translator: StreamTranslator, resp: Response
) -> AsyncIterator[list[StreamEvent] | openai.APIError]:
    """One upstream stream as batches of events (one per frame), its end included; a transport
    failure or a garbled frame arrives as the error it is."""
    dep = call.deployment
    decoder = getattr(adapter, "frame_decoder", SSEDecoder)()  # SSE unless the protocol frames otherwise
    try:
        async for chunk in resp.content.iter_any():
            for frame in frames(dep, decoder.feed, chunk):
                yield translate(translator, frame, dep)
        for frame in frames(dep, decoder.finish):
            yield translate(translator, frame, dep)
        yield translator.finish()
    except (TimeoutError, aiohttp.ClientError) as exc:
        yield upstream_failure(exc, describe(dep))  # type: ignore[misc]
    except Garbled as exc:
        yield errors.status_error(502, str(exc), code="bad_upstream_reply")


def total_tokens(response: dict[str, Any]) -> int:
    usage = response.get("usage")
    return int(usage.get("total_tokens") or 0) if isinstance(usage, dict) else 0


def _broken(event: StreamEvent, dep: Deployment) -> openai.APIError:
    """The error a leg that ended in `response.failed` or `error` stands for."""
    data = event.data
    error = data.get("error") or (data.get("response") or {}).get("error") or data
    message = str(error.get("message") or f"The stream of {describe(dep)} failed.")
    return errors.status_error(502, message, code=error.get("code") or "upstream_stream_failed")
