"""The management routes, LiteLLM's paths and shapes: `/key/*`, `/team/*`, `/user/*`,
`/spend/*`, `/model/info`. HTTP only: the work is the gateway's (llmrelay/gateway/admin.py).
The master key or a `proxy_admin`'s key, except `GET /key/info` about the caller's own key."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from .. import errors
from ..gateway.directory import PREFIX, digest
from ..store.base import REPORT_GROUPS
from .auth import caller_of

if TYPE_CHECKING:
    from .app import Proxy

Handler = Callable[[Request], Awaitable[Response]]
MAX_LOGS = 10_000
_GROUP_NAMES = {"api_key": "key", "team": "team_id", "user": "user_id", **{g: g for g in REPORT_GROUPS}}


def _json(data: Any) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


def admin_routes(proxy: Proxy) -> list[tuple[str, Handler, str]]:
    admin = proxy.gateway.admin

    async def body_of(request: Request) -> dict[str, Any]:
        await proxy.master_only(request)
        has_body = request.headers.get("content-length") not in (None, "0") or "chunked" in request.headers.get(
            "transfer-encoding", ""
        )
        return await proxy.json_body(request) if has_body else {}

    def post(work: Callable[[dict[str, Any]], Awaitable[Any]]) -> Handler:
        async def handler(request: Request) -> Response:
            return _json(await work(await body_of(request)))

        return handler

    def get(work: Callable[[dict[str, Any]], Awaitable[Any]]) -> Handler:
        async def handler(request: Request) -> Response:
            await proxy.master_only(request)
            await _flushed(proxy)  # listed spend includes this instance's latest calls
            return _json(await work(dict(request.query_params)))

        return handler

    async def key_info(request: Request) -> Response:
        owner = await proxy.owner(request)
        ref = request.query_params.get("key")
        caller = caller_of(request)
        if owner is not None or caller is not None:  # a virtual key may only ask about itself
            mine = caller.key.id if caller is not None else None
            if ref is not None and (digest(ref) if ref.startswith(PREFIX) else ref) != mine:
                raise errors.status_error(403, "A key may only read its own info.", type="permission_error")
            ref = mine
        elif proxy.auth.open and ref is None:
            raise errors.bad_request("Give the key as ?key=...", param="key")
        await _flushed(proxy)
        return _json(await admin.key_info(ref))

    async def regenerate(request: Request) -> Response:
        body = await body_of(request)
        return _json(await admin.regenerate_key(request.path_params.get("key") or body.get("key"), body))

    async def spend_logs(request: Request) -> Response:
        await proxy.master_only(request)
        q = request.query_params
        where: dict[str, Any] = {}
        if ref := q.get("api_key") or q.get("key"):
            where["key"] = await _key_id(proxy, ref)
        for name in ("team_id", "user_id", "model", "request_id"):
            if value := q.get(name):
                where[name] = value
        start, end = _dates(q.get("start_date"), q.get("end_date"))
        limit = q.get("limit", "1000")
        if not (limit.isascii() and limit.isdigit() and 1 <= int(limit) <= MAX_LOGS):
            raise errors.bad_request(f"'limit' must be 1 to {MAX_LOGS}.", param="limit", code="invalid_value")
        await _flushed(proxy)
        return _json(await proxy.relay.store.spend_logs(where, start=start, end=end, limit=int(limit)))

    async def spend_report(request: Request) -> Response:
        await proxy.master_only(request)
        q = request.query_params
        group = _GROUP_NAMES.get(q.get("group_by", "key"))
        if group is None:
            raise errors.bad_request(
                "'group_by' must be one of key, team, user, model, day.", param="group_by", code="invalid_value"
            )
        await _flushed(proxy)
        start, end = _dates(q.get("start_date"), q.get("end_date"))
        return _json({"group_by": group, "data": await proxy.relay.store.spend_report(group, start=start, end=end)})

    async def model_info(request: Request) -> Response:
        await proxy.owner(request)
        router = proxy.relay.router
        data = []
        for name, deployments in (router.groups if router else {}).items():
            for dep in deployments:
                rates = proxy.gateway.pricing.rates(dep)
                info = {"id": dep.id, "litellm_provider": dep.provider.name, "input_cost_per_token": rates.input,
                        "output_cost_per_token": rates.output, "cache_read_input_token_cost": rates.cache_read,
                        "price_known": rates.known, "max_input_tokens": dep.extra.get("max_input_tokens")}  # fmt: skip
                data.append({"model_name": name, "litellm_params": {"model": f"{dep.provider.name}/{dep.model}"},
                             "model_info": info})  # fmt: skip
        return _json({"data": data})

    def kind_routes(kind: str) -> list[tuple[str, Handler, str]]:
        async def info(q: dict[str, Any]) -> Any:
            await _flushed(proxy)
            return await admin.info(kind, q.get(f"{kind}_id"))

        async def listing(q: dict[str, Any]) -> Any:
            return await admin.list(kind, q)

        async def new(b: dict[str, Any]) -> Any:
            return await admin.new(kind, b)

        async def update(b: dict[str, Any]) -> Any:
            return await admin.update(kind, b)

        async def delete(b: dict[str, Any]) -> Any:
            return await admin.delete(kind, b)

        return [(f"/{kind}/new", post(new), "POST"), (f"/{kind}/update", post(update), "POST"),
                (f"/{kind}/delete", post(delete), "POST"), (f"/{kind}/info", get(info), "GET"),
                (f"/{kind}/list", get(listing), "GET")]  # fmt: skip

    async def block(b: dict[str, Any]) -> Any:
        return await admin.block_key(b, True)

    async def unblock(b: dict[str, Any]) -> Any:
        return await admin.block_key(b, False)

    return [
        ("/key/generate", post(admin.generate_key), "POST"),
        ("/key/update", post(admin.update_key), "POST"),
        ("/key/delete", post(admin.delete_keys), "POST"),
        ("/key/block", post(block), "POST"),
        ("/key/unblock", post(unblock), "POST"),
        ("/key/regenerate", regenerate, "POST"),
        ("/key/{key}/regenerate", regenerate, "POST"),
        ("/key/info", key_info, "GET"),
        ("/key/list", get(admin.list_keys), "GET"),
        *kind_routes("team"),
        *kind_routes("user"),
        ("/spend/logs", spend_logs, "GET"),
        ("/global/spend/report", spend_report, "GET"),
        ("/model/info", model_info, "GET"),
        ("/v1/model/info", model_info, "GET"),
    ]


async def _flushed(proxy: Proxy) -> None:
    """Store this instance's pending spend first, so what it reads includes its latest calls."""
    if proxy.gateway.spend is not None:
        await proxy.gateway.spend.flush()


async def _key_id(proxy: Proxy, ref: str) -> str:
    """The id spend logs name a key by, from the key or its token."""
    return (await proxy.gateway.admin.key(ref, "api_key")).record.get("owner") or ref


def _dates(start: str | None, end: str | None) -> tuple[float, float]:
    """LiteLLM's start_date / end_date (YYYY-MM-DD, UTC; end_date inclusive) as epoch bounds."""

    def day(text: str, param: str) -> float:
        try:
            return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
        except ValueError:
            raise errors.bad_request(f"'{param}' must be a date, YYYY-MM-DD.", param=param) from None

    lo = day(start, "start_date") if start else 0.0
    hi = day(end, "end_date") + 86400 if end else time.time() + 86400
    return lo, hi
