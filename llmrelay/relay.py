"""Relay: the one async core under the SDK and the proxy.

create: validate -> resolve `previous_response_id` from the store -> pick a deployment ->
adapter builds the upstream request -> HTTP -> adapter parses (or translates the stream) ->
the store keeps the record -> the response (or the terminal event) goes out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import aiohttp
import openai

from . import compaction, errors, items, validate
from .conversations import Conversations, conversation_id
from .gateway.produced import in_runs
from .gateway.stage import Stage, outcome_of, run_after, run_before, staged
from .http_client import Response
from .ids import new_id
from .jobs import Jobs
from .lifecycle import Lifecycle
from .mcp import McpPolicy, plan_for
from .mcp.loop import ToolLoop
from .mcp.servers import has_mcp, without_secrets
from .options import first_bool, first_int, seconds
from .providers import convert, media
from .providers.adapters import make_adapter
from .providers.base import Adapter, Call
from .providers.media import MediaPolicy
from .providers.mock import echo_text, mock_events
from .providers.openai import OpenAIResponses
from .providers.registry import AWS_PARAMS, Deployment, make_deployment, require_key, with_provider
from .providers.support import strip_unsupported
from .reroute import continued_stream, move, recover, total_tokens
from .router import Router
from .store import ResponseStore, StoredResponse, open_store
from .store.base import StoreUnavailable
from .streaming.events import StreamEvent
from .streaming.sse import SSEDecoder
from .transport import Http, HttpRequest, upstream_failure
from .upstream import (
    Garbled,
    describe,
    frames,
    parsed,
    read_body,
    translate,
    translate_frames,
    translate_wire,
    upstream_error,
)

log = logging.getLogger("llmrelay")
Json = dict[str, Any]
MAX_CHAIN = 10_000
CLOUD_OPTIONS = ("vertex_project", "vertex_location", "vertex_credentials", "azure_ad_token")


class Relay(Lifecycle):
    """The core. `router=None` resolves each model string directly ("openai/gpt-4o"),
    as the SDK does; with a router, only its model names are served, as the proxy does."""

    def __init__(
        self,
        *,
        store: ResponseStore | str | None = None,
        router: Router | None = None,
        num_retries: int = 0,
        timeout: float | None = None,
        stream_timeout: float | None = None,
        drop_params: bool = False,
        prompt_caching: bool = True,
        mcp: McpPolicy | None = None,
        stages: list[Stage] | None = None,
        media: MediaPolicy | None = None,
    ) -> None:
        self.store: ResponseStore = store if store is not None and not isinstance(store, str) else open_store(store)
        self.router = router
        self.num_retries = num_retries
        self.timeout = timeout
        self.stream_timeout = stream_timeout
        self.drop_params = drop_params
        self.prompt_caching = prompt_caching  # marks for the providers that cache only where marked
        self.mcp = mcp or McpPolicy()  # the SDK reaches any MCP server URL; a proxy only its own
        self.media = media or MediaPolicy()  # fetching image and file URLs for upstreams that cannot
        self.stages: list[Stage] = stages or []  # gateway policy around every call, in order
        self.http = Http()
        self._native = OpenAIResponses()
        self._adapters: dict[str, Adapter] = {"responses": self._native}  # the others made on first use
        # Deployments this process built from SDK call options, by id: background GET/cancel
        # need the upstream's URL and key again, and the store keeps neither (the router knows
        # its own).
        self._deployments: dict[str, Deployment] = {}
        self.jobs = Jobs(self.store)
        self.conversations = Conversations(self.store)

    # -- create ------------------------------------------------------------------------------

    async def create(
        self, params: Json, *, owner: str | None = None, dropped: list[str] | None = None, meta: Json | None = None
    ) -> Json:
        """A non-streamed create; returns the Response object as a dict. Fields dropped under
        `drop_params` are appended to `dropped`. `meta` is what the gateway stages read (the
        caller's key) and what the call reports back (its `cost`, the `deployment` that answered)."""
        call, mock = await self._prepare(params, owner, dropped, meta=meta)
        if not self.stages:
            return await self._create(call, mock)
        await run_before(self.stages, call)
        response = None
        try:
            response = await self._create(call, mock)
        finally:
            if not (call.job and response is not None):  # a job is charged when it ends
                run_after(self.stages, call, outcome_of(call, response))
        return response

    async def _create(self, call: Call, mock: str | None) -> Json:
        if self._runs_in_background(call, mock):
            return (await self.jobs.start(call, self._job_events(call, mock))).response
        if call.mcp is not None:
            loop = await self._tool_loop(call, mock)
            async for _ in loop.events():
                pass
            response, upstream_id = loop.response or {}, None
        elif mock is not None:
            response, upstream_id = mock_events(call, mock)[1], None
        else:
            response, upstream_id = await self._send(call)
            call.meta["deployment"] = call.deployment.id  # the one that answered, after any reroute
        await self._save(call, response, upstream_id)
        return response

    async def stream(
        self,
        params: Json,
        *,
        owner: str | None = None,
        dropped: list[str] | None = None,
        memory: dict[str, StoredResponse] | None = None,
        meta: Json | None = None,
        sse: bool = False,
    ) -> AsyncIterator[StreamEvent]:
        """A streamed create. Everything that can fail before the first event (bad input,
        unknown model, upstream 4xx/5xx) raises here, so a server can still answer with a
        plain HTTP error; failures after that arrive as a `response.failed` event. `memory`
        keeps store=false responses (a WebSocket connection's) so they can be continued. `sse`:
        the caller only writes the events out as SSE (`StreamEvent.sse()`), so they may come in
        Runs: each stretch before a terminal event in one piece, a native stream's plain frames
        in the bytes they came in."""
        call, mock = await self._prepare(params, owner, dropped, memory, meta)
        call.sse_runs = sse
        if not self.stages:
            return await self._stream(call, mock)
        await run_before(self.stages, call)
        try:
            events = await self._stream(call, mock)
        except BaseException:
            run_after(self.stages, call, outcome_of(call, None))
            raise
        return events if call.job else staged(self.stages, call, events)

    async def _stream(self, call: Call, mock: str | None) -> AsyncIterator[StreamEvent]:
        if self._runs_in_background(call, mock):
            record = await self.jobs.start(call, self._job_events(call, mock))
            return self.jobs.follow(record, after=-1)
        if call.mcp is not None:
            return self._tool_stream(call, await self._tool_loop(call, mock))
        if mock is not None:
            return self._mock_stream(call, mock)
        resp = await self._open(call, stream=True)
        call.meta["deployment"] = call.deployment.id
        return self._relay_stream(call, self.adapter(call.deployment), resp)

    def adapter(self, dep: Deployment) -> Adapter:
        adapter = self._adapters.get(dep.provider.api)
        if adapter is None:
            adapter = self._adapters[dep.provider.api] = make_adapter(dep.provider.api)
        return adapter

    def _runs_in_background(self, call: Call, mock: str | None) -> bool:
        """Background mode llmrelay runs itself: every provider without native background."""
        if not call.params.get("background"):
            return False
        if call.params.get("store") is False:
            raise errors.bad_request("Background responses must be stored: drop store=false.", param="store")
        return mock is not None or call.deployment.provider.api != "responses"

    def _job_events(self, call: Call, mock: str | None) -> Callable[[], AsyncIterator[StreamEvent]]:
        call.job = True
        call.params["stream"] = True  # run as a stream upstream, so every event can be kept

        async def events() -> AsyncIterator[StreamEvent]:
            if self.stages:  # charged on its terminal event; one cancelled before it, by what it reported
                async for event in staged(self.stages, call, upstream()):
                    yield event
            else:
                async for event in upstream():
                    yield event

        async def upstream() -> AsyncIterator[StreamEvent]:
            if call.mcp is not None:
                async for event in self._tool_stream(call, await self._tool_loop(call, mock)):
                    yield event
                return
            if mock is not None:
                async for event in self._mock_stream(call, mock):
                    yield event
                return
            resp = await self._open(call, stream=True)
            async for event in self._relay_stream(call, self.adapter(call.deployment), resp):
                yield event

        return events

    async def _prepare(
        self,
        params: Json,
        owner: str | None,
        dropped: list[str] | None = None,
        memory: dict[str, StoredResponse] | None = None,
        meta: Json | None = None,
    ) -> tuple[Call, str | None]:
        params = dict(params)
        opts = {k: params.pop(k) for k in validate.CALL_OPTIONS if k in params}
        validate.check_create(params)
        if compaction.has_envelope(params.get("input")):
            params["input"] = compaction.expand(params["input"])
        previous = None
        if prev_id := params.get("previous_response_id"):
            previous = (memory or {}).get(prev_id) or await self.store.get(prev_id, owner)
            if previous is None:
                raise errors.bad_request(  # OpenAI answers 400 here, not 404
                    f"Previous response with id '{prev_id}' not found.",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
        dep = self._deployment(params["model"], opts, prefer=previous.deployment if previous else None)
        log.debug("model %r -> deployment %s (%s)", params["model"], dep.id, dep.provider.name)
        mock = opts.get("mock_response", dep.extra.get("mock_response"))
        namespaces: dict[str, tuple[str, str]] = {}
        plan = None
        if dep.provider.api != "responses" and has_mcp(params):  # OpenAI runs MCP tools itself
            plan = plan_for(params, self.mcp)
        if mock is None and dep.provider.api != "mock":
            require_key(dep)
            if support := getattr(self.adapter(dep), "support", None):
                namespaces = convert.flatten_namespaces(params)
                drop = first_bool(opts.get("drop_params"), dep.extra.get("drop_params"), self.drop_params)
                if names := strip_unsupported(params, support, drop=drop):
                    log.warning("dropped %s: not supported by provider %r", ", ".join(names), support.provider)
                    if dropped is not None:
                        dropped.extend(names)
        timeout, stream_timeout = self._timeouts(opts, dep)
        call = Call(
            id=new_id("resp"),
            params=params,
            deployment=dep,
            input_items=items.normalize(params.get("input") or [], new_id),
            created_at=int(time.time()),
            new_id=new_id,
            owner=owner,
            timeout=timeout,
            stream_timeout=stream_timeout,
            retries=first_int(opts.get("num_retries"), opts.get("max_retries"), dep.max_retries, self.num_retries),
            extra_headers=dict(opts.get("extra_headers") or {}),
            extra_body=dict(opts.get("extra_body") or {}),
            extra_query=dict(opts.get("extra_query") or {}),
            memory=memory,
            namespaces=namespaces,
            mcp=plan,
            meta={} if meta is None else meta,
            prompt_caching=opts.get("prompt_caching"),
            prompt_caching_default=self.prompt_caching,
        )
        if previous is not None:
            if previous.deployment == dep.id and previous.upstream_id:
                call.upstream_previous_id = previous.upstream_id
            else:
                call.context = await self._history(previous, owner)
            if plan is not None:  # earlier listings and approval requests, as stored
                plan.history = await self._chain_items(previous, owner)
        if conv_id := conversation_id(params.get("conversation")):
            await self._join_conversation(call, conv_id, previous is not None)
        if mock is None and dep.provider.api == "mock":
            mock = echo_text(call)
        return call, None if mock is None else str(mock)

    async def _join_conversation(self, call: Call, conv_id: str, chained: bool) -> None:
        if chained:
            raise errors.bad_request(
                "Mutually exclusive parameters: give either 'conversation' or 'previous_response_id'.",
                param="conversation",
            )
        conv = await self.store.get_conversation(conv_id, call.owner)
        if conv is None:
            if call.deployment.provider.api == "responses":
                return  # not ours: the upstream's own conversation, passed through
            raise errors.not_found(f"Conversation with id '{conv_id}' not found.", param="conversation")
        call.conversation_id = conv_id
        call.context = items.replayable(compaction.expand(conv.items))

    def _deployment(self, model: str, opts: Json, prefer: str | None) -> Deployment:
        if self.router is not None:
            return self.router.pick(model, prefer)
        dep = make_deployment(
            with_provider(model, opts.get("custom_llm_provider")),
            api_key=opts.get("api_key"),
            api_base=opts.get("api_base") or opts.get("base_url"),
            api_version=opts.get("api_version"),
            chat_api=bool(opts.get("use_chat_completions_api")),
            extra={k: opts[k] for k in AWS_PARAMS if opts.get(k)},
            cloud_settings={k: opts[k] for k in CLOUD_OPTIONS if opts.get(k) is not None},
        )
        return self._deployments.setdefault(dep.id, dep)  # the first one keeps its cached cloud tokens

    async def _history(self, record: StoredResponse, owner: str | None) -> list[Json]:
        """Every item of the chain ending at `record`, oldest first, ready to replay."""
        return items.replayable(compaction.expand(await self._chain_items(record, owner)))

    async def _chain_items(self, record: StoredResponse, owner: str | None) -> list[Json]:
        """Every item of the chain ending at `record`, oldest first, as stored."""
        chain = [record]
        while (prev := chain[-1].previous_response_id) and len(chain) < MAX_CHAIN:
            older = await self.store.get(prev, owner)
            if older is None:
                break
            chain.append(older)
        history: list[Json] = []
        for r in reversed(chain):
            history += r.input_items
            history += r.response.get("output") or []
        return history

    # -- upstream I/O ------------------------------------------------------------------------

    async def _fit(self, call: Call, adapter: Adapter) -> None:
        """`truncation: "auto"` against a known window (`model_info.max_input_tokens`): count
        with the provider's own counter and drop the oldest turns until the input fits."""
        window = call.deployment.extra.get("max_input_tokens")
        counter = getattr(adapter, "count_request", None)
        native = adapter is self._native  # a native upstream truncates by itself
        if native or not window or counter is None or call.params.get("truncation") != "auto":
            return
        while await self._count(call, adapter) > window:
            if not call.drop_oldest_turns():
                raise errors.bad_request(
                    f"The input exceeds the model's context window of {window} tokens even without its older turns.",
                    param="input",
                    code="context_length_exceeded",
                )

    async def _count(self, call: Call, adapter: Any) -> int:
        dep = call.deployment
        body = await self.fetch(adapter.count_request(call), adapter, dep, timeout=call.timeout, retries=call.retries)
        return int(parsed(dep, adapter.parse_count, body))

    async def fetch(
        self, req: HttpRequest, adapter: Adapter, dep: Deployment, *, timeout: float | None, retries: int
    ) -> bytes:
        """One whole upstream exchange: the body, or the adapter's error for an error status."""
        resp = await self.http.send(req, timeout=timeout, retries=retries, upstream=describe(dep))
        body = await read_body(resp, dep)
        if resp.status >= 400:
            raise upstream_error(adapter.parse_error(resp.status, body, resp.headers), dep)
        return body

    async def _open(self, call: Call, *, stream: bool) -> Response:
        """Send the request; on an error status raise it (after retries), else return the
        unread response. With a router, retries and fallbacks may move the call to another
        deployment (`call.deployment` says which one answered)."""
        router = self.router
        if router is None:
            return await self._request(call, self.adapter(call.deployment), stream=stream, retries=call.retries)
        while True:
            if router.tracks:
                if router.reserves and (dep := await router.reserve(call)) is not call.deployment:
                    await move(self, call, dep)
                router.started(call)
            try:
                return await self._request(call, self.adapter(call.deployment), stream=stream, retries=0)
            except (openai.APIStatusError, openai.APIConnectionError) as err:
                if call.started is not None:
                    router.finished(call, ok=False)
                await recover(self, call, err)

    async def _request(self, call: Call, adapter: Adapter, *, stream: bool, retries: int) -> Response:
        """One deployment's answer. An upstream that lost its stored state gets the history replayed."""
        await media.inline(call, adapter, self.http, self.media)
        await self._fit(call, adapter)
        dep = call.deployment
        resp = await self.http.send(
            adapter.build_request(call),
            timeout=call.stream_timeout if stream else call.timeout,
            retries=retries,
            stream=stream,
            upstream=describe(dep),
        )
        if resp.status < 400:
            return resp
        err = upstream_error(adapter.parse_error(resp.status, await read_body(resp, dep), resp.headers), dep)
        auto = call.params.get("truncation") == "auto"
        # The provider itself judged the input too long: drop old turns and try again.
        if err.code == "context_length_exceeded" and auto and call.drop_oldest_turns():
            return await self._request(call, adapter, stream=stream, retries=retries)
        lost = err.code == "previous_response_not_found" or err.param == "previous_response_id"
        if call.upstream_previous_id and lost:
            # The upstream expired or never kept it; the store still has every item.
            previous = await self.store.get(str(call.params["previous_response_id"]), call.owner)
            if previous is not None:
                call.upstream_previous_id = None
                call.context = await self._history(previous, call.owner)
                return await self._request(call, adapter, stream=stream, retries=retries)
        raise err

    async def _send(self, call: Call) -> tuple[Json, str | None]:
        try:
            while True:
                resp = await self._open(call, stream=False)
                adapter = self.adapter(call.deployment)
                try:
                    body = await read_body(resp, call.deployment)
                    result = parsed(call.deployment, adapter.parse_response, body, call)
                except (openai.APIStatusError, openai.APIConnectionError) as err:  # cut short, or not valid
                    if call.started is not None:
                        self.router.finished(call, ok=False)  # type: ignore[union-attr]
                    await recover(self, call, err)
                    continue
                if call.started is not None:
                    self.router.finished(call, ok=True, tokens=total_tokens(result[0]))  # type: ignore[union-attr]
                return result
        finally:
            if call.started is not None:  # cancelled: the call is no longer in flight
                self.router.finished(call, ok=False)  # type: ignore[union-attr]

    async def _relay_stream(self, call: Call, adapter: Adapter, resp: Response) -> AsyncIterator[StreamEvent]:
        router, model = self.router, call.params.get("model")  # no model: a stored stream resumed, not a create
        if (
            router is not None
            and model is not None
            and (router.tracks or router.continues(str(model), call.deployment, call.retries))
        ):
            async for event in continued_stream(self, call, adapter, resp):
                yield event
            return
        translator = adapter.stream_translator(call)
        decoder = getattr(adapter, "frame_decoder", SSEDecoder)()  # SSE unless the protocol frames otherwise
        # Runs only where nothing reads the events one by one (not a job's record, not an MCP round)
        runs = call.sse_runs and not call.job and call.mcp is None
        wire = runs and hasattr(translator, "feed_wire")  # native: plain frames never decoded
        batched = runs and not wire and hasattr(translator, "feed_frames")  # a chunk's frames at once
        dep = call.deployment
        finished = False
        try:
            try:
                async for chunk in resp.content.iter_any():
                    # generators: the events before a frame that cannot be read still go out
                    if wire:
                        batch: Iterable[StreamEvent] = translate_wire(translator, chunk, dep)
                    elif batched:
                        batch = translate_frames(translator, frames(dep, decoder.feed, chunk), dep)
                    else:
                        batch = (e for f in frames(dep, decoder.feed, chunk) for e in translate(translator, f, dep))
                    for event in in_runs(batch) if runs else batch:
                        if event.terminal and translator.response is not None:
                            await self._save(call, translator.response, translator.upstream_id)
                        yield event
                if wire:
                    tail = list(translate_wire(translator, None, dep))
                else:
                    tail = [e for f in frames(dep, decoder.finish) for e in translate(translator, f, dep)]
                tail += translator.finish()
            except (TimeoutError, aiohttp.ClientError) as exc:
                tail = translator.fail(str(upstream_failure(exc, describe(call.deployment))))
            except Garbled as exc:  # bytes after the terminal event change nothing
                tail = translator.fail(str(exc)) if translator.response is None else []
            for event in tail:
                if event.terminal and translator.response is not None:
                    await self._save(call, translator.response, translator.upstream_id)
                yield event
            finished = True
        finally:
            # A consumer that stopped early (a client that went away) closes the connection,
            # so the upstream stops generating too; nothing half-done was stored.
            if finished:
                resp.release()
            else:
                resp.close()

    async def _tool_loop(self, call: Call, mock: str | None) -> ToolLoop:
        """The MCP tool loop over this relay's single rounds, started: what can still fail as a
        plain error (the first upstream call) has failed by now."""
        assert call.mcp is not None
        loop = ToolLoop(call, call.mcp, lambda c: self._round(c, mock))
        await loop.start()
        return loop

    async def _round(self, call: Call, mock: str | None) -> AsyncIterator[StreamEvent]:
        """One upstream turn as a stream of events; nothing is stored (`store` is off)."""
        if mock is not None:
            return _iterate(mock_events(call, mock)[0])
        resp = await self._open(call, stream=True)
        return self._relay_stream(call, self.adapter(call.deployment), resp)

    async def _tool_stream(self, call: Call, loop: ToolLoop) -> AsyncIterator[StreamEvent]:
        async for event in loop.events():
            if event.terminal and loop.response is not None:
                await self._save(call, loop.response, None)
            yield event

    async def _mock_stream(self, call: Call, text: str) -> AsyncIterator[StreamEvent]:
        events, response = mock_events(call, text)
        for event in events:
            if event.terminal:
                await self._save(call, response, None)
            yield event

    async def _save(self, call: Call, response: Json, upstream_id: str | None) -> None:
        if call.conversation_id and response.get("status") in ("completed", "incomplete"):
            turn = call.input_items + (response.get("output") or [])
            await self.conversations.append_turn(call.conversation_id, turn, owner=call.owner)
        if call.params.get("store") is False and call.memory is None:
            return
        record = StoredResponse(
            id=call.id,
            response=without_secrets(response),
            input_items=call.input_items,
            deployment=call.deployment.id,
            upstream_id=upstream_id,
            previous_response_id=call.params.get("previous_response_id"),
            owner=call.owner,
            created_at=call.created_at,
        )
        if call.params.get("store") is False:
            # kept only in the connection's memory; the upstream kept nothing, so replay later
            record.upstream_id = None
            call.memory[call.id] = record  # type: ignore[index]
        elif call.job:
            self.jobs.finished(record)  # stored after its terminal event, never over a cancel
        else:
            await self._put(record)

    async def _put(self, record: StoredResponse) -> None:
        try:
            await self.store.put(record)
        except StoreUnavailable:
            raise
        except Exception as exc:  # a store failure must not look like a success; its text stays in the log
            log.exception("the response store failed to save %s", record.id)
            raise errors.status_error(500, "The response store failed.", type="server_error") from exc

    def _timeouts(self, opts: Json, dep: Deployment) -> tuple[float | None, float | None]:
        """A call's (timeout, stream timeout): the caller's, the deployment's, then the relay's;
        a deployment's `timeout` bounds its streams too unless it sets `stream_timeout`."""
        asked = seconds(opts.get("timeout"))
        timeout = asked or dep.timeout or self.timeout
        return timeout, asked or dep.stream_timeout or dep.timeout or self.stream_timeout or self.timeout

    async def aclose(self) -> None:
        await self.jobs.aclose()
        for stage in self.stages:  # the spend log writes what it still holds
            if (close := getattr(stage, "aclose", None)) is not None:
                await close()
        if self.router is not None:
            await self.router.aclose()
        await self.http.close()
        await self.store.close()


async def _iterate(events: list[StreamEvent]) -> AsyncIterator[StreamEvent]:
    for event in events:
        yield event
