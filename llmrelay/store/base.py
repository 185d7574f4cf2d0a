"""The ResponseStore protocol and the record it keeps."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from .. import errors

Json = dict[str, Any]
UNAVAILABLE = "The response store is unavailable right now. Please retry shortly."


class StoreUnavailable(errors.InternalServerError):
    """The store cannot be reached (a database restart or outage): a 503 the client may retry.
    The database's own error text goes to the log, never to the client."""

    def __init__(self) -> None:
        body = {"message": UNAVAILABLE, "type": "service_unavailable", "param": None, "code": "service_unavailable"}
        super().__init__(UNAVAILABLE, response=errors.local_response(503, {"retry-after": "1"}), body=body)


@dataclass(slots=True)
class StoredResponse:
    id: str
    response: Json  # the public Response object, output included
    input_items: list[Json] = field(default_factory=list)  # this turn's input, with ids
    deployment: str = ""  # Deployment.id that produced it
    upstream_id: str | None = None  # the upstream's own id, when it keeps state
    previous_response_id: str | None = None
    owner: str | None = None  # key / team under the proxy; None in the SDK
    created_at: int = 0
    lease_until: int | None = None  # a background job llmrelay runs: alive while this is ahead

    @classmethod
    def from_row(cls, row: Any) -> StoredResponse:
        """A row of the SQL stores' COLUMNS (JSON columns as text or bytes)."""
        rid, owner, dep, up, prev, created, response, items, lease = row
        return cls(
            id=rid,
            owner=owner,
            deployment=dep,
            upstream_id=up,
            previous_response_id=prev,
            created_at=created,
            response=orjson.loads(response),
            input_items=orjson.loads(items),
            lease_until=lease,
        )

    @property
    def status(self) -> str:
        return str(self.response.get("status", ""))

    @property
    def background(self) -> bool:
        return bool(self.response.get("background"))


ACTIVE = ("queued", "in_progress")
Event = tuple[int, str, bytes]  # (sequence_number, type, data as JSON bytes)


@dataclass(slots=True)
class Conversation:
    id: str
    created_at: int
    metadata: dict[str, str] = field(default_factory=dict)
    items: list[Json] = field(default_factory=list)
    owner: str | None = None

    def public(self) -> Json:
        return {"id": self.id, "object": "conversation", "created_at": self.created_at, "metadata": self.metadata}


@dataclass(slots=True)
class Entity:
    """A gateway key, team or user. `spend` is all it ever spent; `window_spend` what it spent
    in the budget window that started at `window_start` (0 without a budget_duration)."""

    kind: str  # "key", "team" or "user"
    id: str  # a key's id is its SHA-256
    record: Json
    spend: float = 0.0
    window_start: int = 0
    window_spend: float = 0.0

    def spend_in(self, window_start: int) -> float:
        return self.window_spend if self.window_start == window_start else 0.0


Charge = tuple[str, str, int, float]  # (kind, id, budget window start, USD)
SPEND_LOG_COLUMNS = (
    "request_id", "key", "key_alias", "team_id", "user_id", "model", "deployment", "provider", "status",
    "input_tokens", "cached_tokens", "output_tokens", "reasoning_tokens", "total_tokens", "cost", "latency_ms",
    "start_time", "prompt",
)  # fmt: skip
REPORT_GROUPS = ("key", "team_id", "user_id", "model", "day")


class ResponseStore(Protocol):
    async def put(self, record: StoredResponse) -> None:
        """Insert or replace."""

    async def update_active(self, record: StoredResponse) -> bool:
        """Replace only while the stored status is still queued / in_progress: a cancelled
        or finished response is never overwritten by a late writer."""

    async def renew_lease(self, response_id: str, until: int) -> None: ...

    async def append_events(self, response_id: str, events: list[Event]) -> None: ...

    async def events_after(self, response_id: str, after: int) -> list[Event]: ...

    async def put_conversation(self, conversation: Conversation) -> None:
        """Insert, or replace the metadata of, a conversation (not its items)."""

    async def get_conversation(self, conversation_id: str, owner: str | None = None) -> Conversation | None: ...

    async def delete_conversation(self, conversation_id: str, owner: str | None = None) -> bool: ...

    async def set_conversation_items(
        self, conversation_id: str, items: list[Json], owner: str | None = None, *, append: bool = True
    ) -> bool:
        """Append `items` (or replace them all), atomically; False when the conversation is gone."""

    async def get(self, response_id: str, owner: str | None = None) -> StoredResponse | None:
        """The record, or None when absent or owned by someone else."""

    async def delete(self, response_id: str, owner: str | None = None) -> bool:
        """True when something was deleted."""

    async def find(self, response_id: str) -> StoredResponse | None:
        """The record whoever owns it: for the admin routes only."""

    async def active(self, limit: int) -> list[StoredResponse]:
        """Background responses still queued or in progress, newest first: for the admin routes."""

    # -- the gateway's keys, teams and users, their spend, and the spend log ----------------------

    async def put_entity(self, entity: Entity, *, create: bool) -> bool:
        """Insert (create: False when the id exists) or replace the record of (False when
        absent) a key, team or user; its spend is left alone."""

    async def get_entity(self, kind: str, entity_id: str) -> Entity | None: ...

    async def list_entities(self, kind: str, *, where: Json, offset: int, limit: int) -> tuple[list[Entity], int]:
        """A page of entities whose record fields equal `where`'s, oldest first, and the total."""

    async def delete_entity(self, kind: str, entity_id: str) -> bool: ...

    async def rename_entity(self, kind: str, old_id: str, new_id: str) -> bool:
        """Move an entity, spend and all, to a new id (a regenerated key)."""

    async def record_spend(self, charges: list[Charge], logs: list[Json]) -> None:
        """Add each charge to its entity's spend and insert the spend log rows, atomically."""

    async def spend_logs(self, where: Json, *, start: float, end: float, limit: int) -> list[Json]:
        """Spend log rows (newest first) whose columns equal `where`'s, started in [start, end)."""

    async def spend_report(self, group_by: str, *, start: float, end: float) -> list[Json]:
        """Spend, requests and tokens per `group_by` (key, team_id, model or day) in [start, end)."""

    async def subscribe(self, callback: Callable[[str], None]) -> bool:
        """Deliver messages other instances publish to `callback`; False when the store has
        no such channel (then jobs fall back to reading their status now and then)."""

    def listening(self) -> bool | None:
        """True while published messages arrive; False while the channel is down (jobs fall
        back to reading their status meanwhile); None without a subscription or a channel."""

    async def publish(self, message: str) -> None: ...

    async def ping(self) -> None:
        """Raise when the store cannot serve requests."""

    async def close(self) -> None: ...


def page_items(
    items: list[Json],
    *,
    after: str | None = None,
    before: str | None = None,
    limit: int = 20,
    order: str = "desc",
) -> Json:
    """OpenAI's list shape over input items: cursors are item ids, `order` is by position."""
    seq = list(reversed(items)) if order == "desc" else list(items)
    ids = [i.get("id") for i in seq]
    start, end = 0, len(seq)
    if after is not None and after in ids:
        start = ids.index(after) + 1
    if before is not None and before in ids:
        end = ids.index(before)
    window = seq[start:end]
    data = window[:limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0].get("id") if data else None,
        "last_id": data[-1].get("id") if data else None,
        "has_more": len(window) > limit,
    }


def report(rows: Iterable[Json]) -> dict[str, list[Json]]:
    """Spend log rows summed per key, team, user, model and day (UTC), biggest spend first."""
    groups: dict[str, dict[Any, Json]] = {g: {} for g in REPORT_GROUPS}
    for row in rows:
        for group, table in groups.items():
            value = time.strftime("%Y-%m-%d", time.gmtime(row["start_time"])) if group == "day" else row.get(group)
            entry = table.setdefault(value, {group: value, "spend": 0.0, "requests": 0, "total_tokens": 0})
            entry["spend"] += row["cost"]
            entry["requests"] += 1
            entry["total_tokens"] += row["total_tokens"]
    return {g: sorted(t.values(), key=lambda e: -e["spend"]) for g, t in groups.items()}
