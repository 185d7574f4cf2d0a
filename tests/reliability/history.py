"""A history of what clients sent and what they got, and the checker run over it afterwards.

During a run that kills or restarts something, every client call is recorded: which key
sent it, what kind of call it was (plain, stream, background, chain), the parent it named,
and what came back. An *acknowledged* response is one the client was told exists: a plain
call's 200, a stream's `response.completed`, a background call's `queued` reply.

Afterwards `check` compares the history with the store's rows and with what the API says:

- lost: an acknowledged response missing from the store
- stuck: a record still queued or in progress once its lease has run out (read through the
  API, which is where a dead process's job turns `failed`), or one with no lease at all
- leaked: a response the other key can read, or stored under another key's owner
- orphans: a stored response whose `previous_response_id` is not in the store
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

ACTIVE = ("queued", "in_progress")


@dataclass(slots=True)
class Call:
    key: str  # the virtual key that sent it
    kind: str  # plain, stream, background, chain
    parent: str | None = None
    response_id: str | None = None
    status: str | None = None  # the last status the client saw
    error: str | None = None  # what went wrong instead (a status code, a broken connection)
    detail: str | None = None  # the error's message

    @property
    def acknowledged(self) -> bool:
        if self.response_id is None or self.error is not None:
            return False
        return self.status == "completed" or (self.kind == "background" and self.status in ("queued", "in_progress"))


@dataclass(slots=True)
class Row:
    """What the checker needs of a stored response."""

    owner: str | None
    status: str
    lease_until: int | None
    previous_response_id: str | None


@dataclass
class History:
    calls: list[Call] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, call: Call) -> Call:
        with self._lock:
            self.calls.append(call)
        return call

    def acknowledged(self) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.acknowledged]

    def last_acknowledged(self, key: str) -> str | None:
        """A parent for a chain call: the latest completed response of this key."""
        with self._lock:
            done = [c for c in self.calls if c.key == key and c.acknowledged and c.status == "completed"]
        return done[-1].response_id if done else None


@dataclass(frozen=True)
class Verdict:
    acknowledged: int
    stored: int
    lost: list[str]
    stuck: list[str]
    leaked: list[str]
    orphans: list[str]

    def line(self) -> str:
        return (
            f"acknowledged {self.acknowledged}, stored {self.stored}, lost {len(self.lost)},"
            f" stuck {len(self.stuck)}, leaked {len(self.leaked)}, orphans {len(self.orphans)}"
        )

    @property
    def clean(self) -> bool:
        return not (self.lost or self.stuck or self.leaked or self.orphans)


def check(
    history: History,
    rows: dict[str, Row],
    public_status: Callable[[str, str], str | None],
    now: float,
) -> Verdict:
    """`rows`: every stored response by id; `public_status(key, id)`: the status the API shows
    that key (None: not found). Run once the traffic has stopped."""
    acked = history.acknowledged()
    keys = sorted({c.key for c in history.calls})
    lost = [c.response_id for c in acked if c.response_id not in rows]
    stored = len(acked) - len(lost)
    owners: dict[str, set[str | None]] = {k: set() for k in keys}
    for c in acked:
        if c.response_id in rows:
            owners[c.key].add(rows[c.response_id].owner)
    leaked = [k for k, found in owners.items() if len(found) > 1]  # one key's records under two owners
    owner_key = {owner: k for k, found in owners.items() for owner in found}
    if len(owner_key) < sum(len(found) for found in owners.values()):
        leaked.append("two keys share an owner")
    probes = [(other, str(c.response_id)) for c in acked for other in keys if other != c.key]
    with ThreadPoolExecutor(8) as pool:  # each probe is a round trip to the proxy
        seen = list(pool.map(lambda probe: public_status(*probe), probes))
    leaked += [rid for (_, rid), status in zip(probes, seen, strict=True) if status is not None]
    stuck = []
    for rid, row in rows.items():
        if row.status not in ACTIVE or (row.lease_until is not None and row.lease_until >= now):
            continue  # finished, or a job whose process may still be running it
        readers = [owner_key[row.owner]] if row.owner in owner_key else keys
        if row.lease_until is None or any(public_status(k, rid) in ACTIVE for k in readers):
            stuck.append(rid)
    orphans = [rid for rid, row in rows.items() if row.previous_response_id and row.previous_response_id not in rows]
    return Verdict(len(acked), stored, lost, stuck, leaked, orphans)
