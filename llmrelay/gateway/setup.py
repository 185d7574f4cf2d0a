"""Which stages a proxy runs, from its config: only what is configured costs anything.

Every call is priced. With a master key (virtual keys possible) the key stages join: model
access, budgets, rate limits and the spend log; their counters live in Redis when one is
configured.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import Config
from ..store import ResponseStore
from .access import ModelAccess
from .admin import Admin
from .budgets import Budgets
from .directory import Directory
from .limits import Counters, Limits, LocalCounters, RedisCounters
from .prices import Pricing
from .spend import SpendLog
from .stage import Stage


@dataclass(slots=True)
class Gateway:
    pricing: Pricing
    directory: Directory
    admin: Admin
    spend: SpendLog | None = None
    stages: list[Stage] = field(default_factory=list)


def build_gateway(config: Config, store: ResponseStore) -> Gateway:
    directory = Directory(store)
    gateway = Gateway(Pricing(), directory, Admin(directory))
    redis_url = config.router_settings.redis()
    counters: Counters = RedisCounters(redis_url) if redis_url else LocalCounters()
    if config.general_settings.master_key is None:  # no keys, so no key limits: pricing only
        gateway.stages = [gateway.pricing]
        return gateway
    prompts = config.general_settings.store_prompts_in_spend_logs
    spend = gateway.spend = SpendLog(store, directory, store_prompts=prompts)
    gateway.stages = [ModelAccess(), Budgets(spend), Limits(counters), gateway.pricing, spend]
    return gateway
