"""The Relay's calls about responses beyond create: retrieve (refreshed from a native upstream
that runs it), resume a background stream, cancel, delete, list input items, compact and count
input tokens. A mixin of `Relay`, which holds the state these use (store, jobs, router, http,
stages) and the create path they reuse (`_prepare`, `create`, `fetch`, `_relay_stream`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import orjson

from . import compaction, errors, items, validate
from .gateway.stage import outcome_of, run_after, run_before
from .ids import new_id
from .jobs import expired, failed_for_dead_runner
from .options import first_int
from .providers import media
from .providers.base import Call
from .providers.mock import input_tokens
from .providers.registry import Deployment, stored_deployment
from .store import StoredResponse
from .store.base import ACTIVE, page_items
from .streaming.events import StreamEvent
from .transport import HttpRequest
from .upstream import describe, parsed, read_body, upstream_error

Json = dict[str, Any]


class Lifecycle:
    async def count_input_tokens(self, params: Json, *, owner: str | None = None, meta: Json | None = None) -> Json:
        """`POST /v1/responses/input_tokens`: the upstream's own count of what a create would send."""
        # The one field of OpenAI's count params a create lacks: named, not "unrecognized".
        if params.get("personality") is not None:
            raise errors.bad_request(
                "'personality' is not supported by llmrelay's token counts.",
                param="personality",
                code="unsupported_parameter",
            )
        params = {k: v for k, v in params.items() if k != "personality"}
        call, mock = await self._prepare({**params, "input": params.get("input") or []}, owner, meta=meta)
        if not self.stages:
            return await self._count_tokens(call, mock)
        await run_before(self.stages, call)
        try:
            return await self._count_tokens(call, mock)
        finally:
            run_after(self.stages, call, outcome_of(call, None, "counted"))  # nothing generated: no cost

    async def _count_tokens(self, call: Call, mock: str | None) -> Json:
        if mock is not None:  # a mocked call never reaches an upstream, nor does its count
            return {"object": "response.input_tokens", "input_tokens": input_tokens(call)}
        adapter = self.adapter(call.deployment)
        counter = getattr(adapter, "count_request", None)
        if counter is None:
            raise errors.bad_request(
                f"Provider '{call.deployment.provider.name}' has no token counter llmrelay can use.",
                param="model",
                code="unsupported_parameter",
            )
        await media.inline(call, adapter, self.http, self.media)  # counted as the upstream will see them
        return {"object": "response.input_tokens", "input_tokens": await self._count(call, adapter)}

    async def compact(self, params: Json, *, owner: str | None = None, meta: Json | None = None) -> Json:
        """`POST /v1/responses/compact`: natively where the upstream compacts, else by a summary."""
        fields = {k: v for k, v in params.items() if k in compaction.FIELDS or k in validate.CALL_OPTIONS}
        call, mock = await self._prepare({**fields, "input": fields.get("input") or []}, owner, meta=meta)
        if call.deployment.provider.api == "responses" and mock is None:
            if self.stages:
                await run_before(self.stages, call)
            compacted = None
            try:
                req = self._native.compact_request(call)
                dep = call.deployment
                body = await self.fetch(req, self._native, dep, timeout=call.timeout, retries=call.retries)
                compacted = parsed(dep, orjson.loads, body)
            finally:
                if self.stages:
                    run_after(self.stages, call, outcome_of(call, compacted, "completed" if compacted else None))
            return compacted
        history = call.context + items.as_items(call.params.get("input") or [])
        options = {k: v for k, v in fields.items() if k in validate.CALL_OPTIONS}
        summary_request = compaction.summary_request(call.params["model"], history, options)
        summary = await self.create(summary_request, owner=owner, meta=meta)  # the summary call is the one charged
        return compaction.compacted(history, summary)

    # -- stored responses ------------------------------------------------------------------

    async def _record(self, response_id: str, owner: str | None) -> StoredResponse:
        record = await self.store.get(response_id, owner) if response_id else None
        if record is None:
            raise errors.not_found(f"No response found with id '{response_id}'.", param="response_id")
        return record

    async def retrieve(self, response_id: str, *, owner: str | None = None, options: Json | None = None) -> Json:
        """A stored response; one the upstream runs is refreshed from there first. `options`
        are the SDK's per-call options (`api_key`, `api_base`, ...): they name the upstream for
        a process that never saw the deployment which created the response."""
        record = await self._live_record(response_id, owner)
        dep = self._upstream(record, options)
        if record.status in ACTIVE and record.upstream_id and dep is not None:
            req = self._native.retrieve_request(dep, record.upstream_id)
            record = await self._refresh(record, dep, req, options)
        return record.response

    async def retrieve_stream(
        self,
        response_id: str,
        *,
        starting_after: int | None = None,
        owner: str | None = None,
        options: Json | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """`GET /v1/responses/{id}?stream=true&starting_after=N`: a background response's events
        after N (the original sequence numbers), then the live ones, to the terminal event."""
        record = await self._live_record(response_id, owner)
        if not record.background:
            raise errors.bad_request("Only background responses can be streamed again.", param="stream")
        after = -1 if starting_after is None else starting_after
        if after < -1:
            raise _out_of_range(after, "-1 (from the start) or more")
        dep = self._upstream(record, options)
        if record.upstream_id and dep is not None and record.lease_until is None:
            call = Call(id=record.id, params={"previous_response_id": record.previous_response_id, "stream": True},
                        deployment=dep, input_items=record.input_items, created_at=record.created_at,
                        new_id=new_id, owner=owner, job=True)  # fmt: skip
            req = self._native.retrieve_request(dep, record.upstream_id)
            query = f"stream=true&starting_after={after}"
            req.url += ("&" if "?" in req.url else "?") + query  # Azure's URLs carry ?api-version
            _, timeout, retries = self._with_options(req, dep, options)
            resp = await self.http.send(req, timeout=timeout, retries=retries, stream=True, upstream=describe(dep))
            if resp.status >= 400:
                body = await read_body(resp, dep)
                raise upstream_error(self._native.parse_error(resp.status, body, resp.headers), dep)
            return self._relay_stream(call, self._native, resp)
        finished = record.status not in ACTIVE and not self.jobs.running(record.id)
        if finished and after >= 0 and not await self.store.events_after(record.id, after - 1):
            raise _out_of_range(after, "at most the sequence number of the response's last event")
        return self.jobs.follow(record, after)

    async def _live_record(self, response_id: str, owner: str | None) -> StoredResponse:
        """The record, with a background job whose runner died shown as failed."""
        record = await self._record(response_id, owner)
        if expired(record) and not self.jobs.running(response_id):
            record = failed_for_dead_runner(record)
            await self.store.update_active(record)
        return record

    async def cancel(self, response_id: str, *, owner: str | None = None, options: Json | None = None) -> Json:
        record = await self._live_record(response_id, owner)
        if not record.background:
            raise errors.bad_request(
                "Only responses created with background=true can be cancelled.", param="response_id"
            )
        if record.status not in ACTIVE:
            if record.status == "cancelled":
                return record.response
            raise errors.bad_request(f"Cannot cancel a response with status '{record.status}'.", param="response_id")
        if record.lease_until is not None:  # a job llmrelay runs: the store decides, the job obeys
            record.response = {**record.response, "status": "cancelled"}
            record.lease_until = None
            if await self.store.update_active(record):
                await self.jobs.cancelled(response_id)
                return record.response
            return await self.cancel(response_id, owner=owner, options=options)  # it finished meanwhile
        dep = self._upstream(record, options)
        if dep is None or not record.upstream_id:
            raise errors.bad_request(
                "The upstream that runs this response is not known to this process; pass its api_key and api_base.",
                param="response_id",
            )
        record = await self._refresh(record, dep, self._native.cancel_request(dep, record.upstream_id), options)
        return record.response

    async def delete(self, response_id: str, *, owner: str | None = None, options: Json | None = None) -> Json:
        record = await self._record(response_id, owner)
        await self.store.delete(response_id, owner)
        dep = self._upstream(record, options)
        if record.upstream_id and dep is not None:
            # Best effort: the record is gone from llmrelay either way.
            req = self._native.delete_request(dep, record.upstream_id)
            timeout, _, _ = self._with_options(req, dep, options)
            with contextlib.suppress(errors.APIConnectionError, errors.APITimeoutError):
                (await self.http.send(req, timeout=timeout or 10.0, upstream=describe(dep))).release()
        return {"id": response_id, "object": "response.deleted", "deleted": True}

    async def input_items(
        self,
        response_id: str,
        *,
        after: str | None = None,
        before: str | None = None,
        limit: int = 20,
        order: str = "desc",
        owner: str | None = None,
    ) -> Json:
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 100:
            raise errors.bad_request("'limit' must be an integer between 1 and 100.", param="limit")
        if order not in ("asc", "desc"):
            raise errors.bad_request("'order' must be 'asc' or 'desc'.", param="order")
        record = await self._record(response_id, owner)
        return page_items(record.input_items, after=after, before=before, limit=limit, order=order)

    def _upstream(self, record: StoredResponse, options: Json | None) -> Deployment | None:
        """The deployment that holds a stored response upstream: the one this process knows by
        the record's id, with whatever the caller's options say about where it is."""
        known = self._deployments.get(record.deployment)
        if known is None and self.router is not None:
            known = self.router.deployment(record.deployment)
        return stored_deployment(known, str(record.response.get("model") or ""), options or {})

    def _with_options(
        self, req: HttpRequest, dep: Deployment, options: Json | None
    ) -> tuple[float | None, float | None, int]:
        """Put the caller's extra_headers / extra_query on a request about a stored response;
        return its timeout, stream timeout and retries."""
        opts = options or {}
        req.headers.update(opts.get("extra_headers") or {})
        if query := opts.get("extra_query"):
            req.url += ("&" if "?" in req.url else "?") + urlencode(query)
        return (*self._timeouts(opts, dep), first_int(opts.get("num_retries"), dep.max_retries, self.num_retries))

    async def _refresh(
        self, record: StoredResponse, dep: Deployment, req: HttpRequest, options: Json | None
    ) -> StoredResponse:
        """Ask the upstream for the current state of a response it runs, and store it."""
        timeout, _, retries = self._with_options(req, dep, options)
        body = await self.fetch(req, self._native, dep, timeout=timeout, retries=retries)
        response = parsed(dep, orjson.loads, body)
        response["id"] = record.id
        response["previous_response_id"] = record.previous_response_id
        record.response = response
        await self._put(record)
        return record


def _out_of_range(after: int, allowed: str) -> errors.APIStatusError:
    return errors.bad_request(
        f"Invalid 'starting_after': {after} is out of range; it must be {allowed}.",
        param="starting_after",
        code="invalid_value",
    )
