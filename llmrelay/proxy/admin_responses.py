"""Admin routes over stored responses, whoever owns them (the `/v1/responses` routes are scoped
to the caller's key): one response with its input items, the background jobs still queued or
running, and cancelling one. The master key or a `proxy_admin`'s key only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from .. import errors
from ..jobs import expired
from ..store.base import StoredResponse

if TYPE_CHECKING:
    from .app import Proxy

Handler = Callable[[Request], Awaitable[Response]]
MAX_JOBS = 1000


def _json(data: Any) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


def response_routes(proxy: Proxy) -> list[tuple[str, Handler, str]]:
    relay = proxy.relay

    async def record(response_id: Any) -> StoredResponse:
        if not isinstance(response_id, str) or not response_id:
            raise errors.bad_request("'response_id' is required.", param="response_id")
        found = await relay.store.find(response_id)
        if found is None:
            raise errors.not_found(f"No response found with id '{response_id}'.", param="response_id")
        return found

    async def info(request: Request) -> Response:
        await proxy.master_only(request)
        found = await record(request.query_params.get("response_id"))
        # through the relay, as its owner would read it: a job whose runner died reads as failed
        response = await relay.retrieve(found.id, owner=found.owner)
        return _json({"response": response, "input_items": found.input_items, "owner": found.owner,
                      "deployment": found.deployment, "previous_response_id": found.previous_response_id})  # fmt: skip

    async def jobs(request: Request) -> Response:
        await proxy.master_only(request)
        limit = request.query_params.get("limit", "100")
        if not (limit.isascii() and limit.isdigit() and 1 <= int(limit) <= MAX_JOBS):
            raise errors.bad_request(f"'limit' must be 1 to {MAX_JOBS}.", param="limit", code="invalid_value")
        data = [_job(r) for r in await relay.store.active(int(limit))]
        return _json({"object": "list", "data": data})

    async def cancel(request: Request) -> Response:
        await proxy.master_only(request)
        body = await proxy.json_body(request)
        found = await record(body.get("response_id"))
        return _json(await relay.cancel(found.id, owner=found.owner))

    return [
        ("/response/info", info, "GET"),
        ("/response/jobs", jobs, "GET"),
        ("/response/cancel", cancel, "POST"),
    ]


def _job(r: StoredResponse) -> dict[str, Any]:
    return {
        "id": r.id,
        "status": r.status,
        "model": r.response.get("model"),
        "owner": r.owner,
        "deployment": r.deployment,
        "created_at": r.created_at,
        "runner": "llmrelay" if r.lease_until is not None else "upstream",
        "runner_gone": expired(r),  # its process stopped: reads as failed once opened
    }
