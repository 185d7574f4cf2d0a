"""Budgets: a key, its user or its team at or over `max_budget` in the current budget window
gets 400 `budget_exceeded` before any upstream call. Windows of `budget_duration` run from the
entity's creation, so a budget resets every window.

Spend is the store's (exact: every instance's charges are added atomically) as this process
last read it (at most the directory's TTL ago, or since another instance's change), plus what
this process charged since. A budget can therefore be overrun by what other instances spend
within that lag, and by the calls already in flight when it is crossed.
"""

from __future__ import annotations

import time

from .. import errors
from ..providers.base import Call
from .directory import Caller
from .durations import window_start
from .entities import budget_seconds
from .spend import SpendLog
from .stage import Outcome


class Budgets:
    def __init__(self, spend: SpendLog) -> None:
        self.spend = spend

    async def before(self, call: Call) -> None:
        caller: Caller | None = call.meta.get("caller")
        if caller is None:
            return
        now = time.time()
        for e in caller.entities():
            budget = e.record.get("max_budget")
            if budget is None:
                continue
            window = window_start(e.record.get("created_at") or 0, budget_seconds(e.record), now)
            spent = e.spend_in(window) + self.spend.pending(e.kind, e.id, window)
            if spent >= budget:
                who = "key" if e.kind == "key" else f"key's {e.kind} '{e.id}'"
                message = f"Budget has been exceeded: this {who} spent {spent:.6g} USD; its max_budget is {budget:g}."
                raise errors.status_error(400, message, type="budget_exceeded", code="budget_exceeded")

    def after(self, call: Call, outcome: Outcome) -> None:
        return None
