"""The management API in LiteLLM's shapes: keys (`/key/*`), teams (`/team/*`), users (`/user/*`).

The proxy's routes parse HTTP and call these; every change to an entity is announced so
that every instance's cache drops it. Plain keys are shown once, at generate / regenerate;
only their SHA-256 is stored (LiteLLM's `token`).
"""

from __future__ import annotations

import math
import secrets
import time
from typing import Any

from .. import errors
from ..ids import new_id
from ..store.base import Entity
from .directory import PREFIX, Directory, digest
from .durations import window_start
from .entities import budget_seconds, check, iso

Json = dict[str, Any]
MAX_PAGE = 100


class Admin:
    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        self.store = directory.store

    # -- views -------------------------------------------------------------------------------

    def view(self, e: Entity) -> Json:
        r = dict(e.record)
        owner = r.pop("owner", None)
        duration = budget_seconds(r)
        start = window_start(r.get("created_at") or 0, duration, time.time())
        out: Json = {**r, "spend": e.spend_in(start) if duration else e.spend, "total_spend": e.spend}
        if duration:
            out["budget_reset_at"] = iso(start + duration)
        out["created_at"] = iso(r.get("created_at"))
        if e.kind == "key":
            out = {"token": e.id, "key_id": owner, **out, "expires": iso(r.get("expires_at"))}
            out.pop("expires_at", None)
        return out

    # -- keys --------------------------------------------------------------------------------

    async def generate_key(self, body: Json) -> Json:
        record = check("key", body)
        await self._check_links(record)
        key = PREFIX + secrets.token_urlsafe(32)
        record.update(owner=new_id("key"), created_at=time.time(), key_name=f"sk-...{key[-4:]}")
        entity = Entity("key", digest(key), record)
        await self.store.put_entity(entity, create=True)
        return {"key": key, **self.view(entity)}

    async def key(self, ref: Any, param: str = "key") -> Entity:
        if not isinstance(ref, str) or not ref:
            raise errors.bad_request(f"'{param}' must be a key (or its token).", param=param)
        entity = await self.store.get_entity("key", digest(ref) if ref.startswith(PREFIX) else ref)
        if entity is None:
            raise errors.not_found("No such key.", param=param, code="key_not_found")
        return entity

    async def update_key(self, body: Json) -> Json:
        entity = await self.key(body.get("key"))
        changes = check("key", body, update=True)
        await self._check_links(changes)
        return self.view(await self._save(entity, changes))

    async def block_key(self, body: Json, blocked: bool) -> Json:
        entity = await self.key(body.get("key"))
        return self.view(await self._save(entity, {"blocked": blocked}))

    async def key_info(self, ref: Any) -> Json:
        entity = await self.key(ref)
        return {"key": entity.id, "info": self.view(entity)}

    async def list_keys(self, query: Json) -> Json:
        where = {k: query[k] for k in ("team_id", "user_id", "key_alias") if query.get(k)}
        page, size = _page(query)
        found, total = await self.store.list_entities("key", where=where, offset=(page - 1) * size, limit=size)
        full = str(query.get("return_full_object", "")).lower() == "true"
        return {
            "keys": [self.view(e) if full else e.id for e in found],
            "total_count": total,
            "current_page": page,
            "total_pages": max(1, math.ceil(total / size)),
        }

    async def delete_keys(self, body: Json) -> Json:
        refs, aliases = body.get("keys") or [], body.get("key_aliases") or []
        if not (isinstance(refs, list) and all(isinstance(k, str) for k in refs) and isinstance(aliases, list)):
            raise errors.bad_request("'keys' must be an array of keys.", param="keys")
        if not refs and not aliases:
            raise errors.bad_request("Give 'keys' (or 'key_aliases') to delete.", param="keys")
        deleted = []
        for ref in refs:
            key_id = digest(ref) if ref.startswith(PREFIX) else ref
            if await self.store.delete_entity("key", key_id):
                await self.directory.changed("key", key_id)
                deleted.append(ref)
        for alias in aliases:
            found, _ = await self.store.list_entities("key", where={"key_alias": alias}, offset=0, limit=MAX_PAGE)
            for e in found:
                if await self.store.delete_entity("key", e.id):
                    await self.directory.changed("key", e.id)
                    deleted.append(alias)
        return {"deleted_keys": deleted}

    async def regenerate_key(self, ref: Any, body: Json) -> Json:
        """A new plain key for the same record, spend and owned responses; the old key stops working."""
        entity = await self.key(ref)
        changes = check("key", {k: v for k, v in body.items() if k != "key"}, update=True)
        await self._check_links(changes)
        key = PREFIX + secrets.token_urlsafe(32)
        if not await self.store.rename_entity("key", entity.id, digest(key)):
            raise errors.not_found("No such key.", param="key", code="key_not_found")
        await self.directory.changed("key", entity.id)
        entity.id = digest(key)
        entity = await self._save(entity, {**changes, "key_name": f"sk-...{key[-4:]}"})
        return {"key": key, **self.view(entity)}

    # -- teams and users ---------------------------------------------------------------------

    async def new(self, kind: str, body: Json) -> Json:
        record = check(kind, body)
        id_field = f"{kind}_id"
        entity_id = record.pop(id_field, None) or new_id(kind)
        record["created_at"] = time.time()
        if not await self.store.put_entity(Entity(kind, entity_id, record), create=True):
            raise errors.bad_request(f"A {kind} with {id_field} '{entity_id}' exists.", param=id_field)
        return {id_field: entity_id, **self.view(Entity(kind, entity_id, record))}

    async def get(self, kind: str, entity_id: Any) -> Entity:
        param = f"{kind}_id"
        if not isinstance(entity_id, str) or not entity_id:
            raise errors.bad_request(f"'{param}' is required.", param=param)
        entity = await self.store.get_entity(kind, entity_id)
        if entity is None:
            raise errors.not_found(f"No {kind} with {param} '{entity_id}'.", param=param, code=f"{kind}_not_found")
        return entity

    async def update(self, kind: str, body: Json) -> Json:
        entity = await self.get(kind, body.get(f"{kind}_id"))
        return {f"{kind}_id": entity.id, **self.view(await self._save(entity, check(kind, body, update=True)))}

    async def info(self, kind: str, entity_id: Any) -> Json:
        entity = await self.get(kind, entity_id)
        keys, _ = await self.store.list_entities("key", where={f"{kind}_id": entity.id}, offset=0, limit=MAX_PAGE)
        return {f"{kind}_id": entity.id, f"{kind}_info": self.view(entity), "keys": [self.view(k) for k in keys]}

    async def list(self, kind: str, query: Json) -> Json:
        page, size = _page(query)
        found, total = await self.store.list_entities(kind, where={}, offset=(page - 1) * size, limit=size)
        return {f"{kind}s": [{f"{kind}_id": e.id, **self.view(e)} for e in found], "total_count": total,
                "current_page": page, "total_pages": max(1, math.ceil(total / size))}  # fmt: skip

    async def delete(self, kind: str, body: Json) -> Json:
        ids = body.get(f"{kind}_ids")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise errors.bad_request(f"'{kind}_ids' must be a non-empty array of ids.", param=f"{kind}_ids")
        deleted = []
        for entity_id in ids:
            if await self.store.delete_entity(kind, entity_id):
                await self.directory.changed(kind, entity_id)
                deleted.append(entity_id)
        return {f"deleted_{kind}s": deleted}

    # -- helpers -----------------------------------------------------------------------------

    async def _save(self, entity: Entity, changes: Json) -> Entity:
        entity.record.update(changes)
        if not await self.store.put_entity(entity, create=False):
            raise errors.not_found(f"No such {entity.kind}.", code=f"{entity.kind}_not_found")
        await self.directory.changed(entity.kind, entity.id)
        return entity

    async def _check_links(self, record: Json) -> None:
        """A key may only name a team that exists; a user it names is created if new, as in LiteLLM."""
        if (team_id := record.get("team_id")) and await self.store.get_entity("team", team_id) is None:
            raise errors.bad_request(f"No team with team_id '{team_id}'.", param="team_id")
        if user_id := record.get("user_id"):
            await self.store.put_entity(Entity("user", user_id, {"created_at": time.time()}), create=True)


def _page(query: Json) -> tuple[int, int]:
    try:
        page, size = int(query.get("page") or 1), int(query.get("size") or 10)
    except (TypeError, ValueError):
        raise errors.bad_request("'page' and 'size' must be whole numbers.", param="page") from None
    if page < 1 or not 1 <= size <= MAX_PAGE:
        raise errors.bad_request(f"'page' must be 1 or more and 'size' 1 to {MAX_PAGE}.", param="size")
    return page, size
