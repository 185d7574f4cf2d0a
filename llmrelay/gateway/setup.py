"""Which stages a proxy runs, from its config: only what is configured costs anything."""

from __future__ import annotations

from ..config import Config
from .prices import Pricing
from .stage import Stage


def gateway_stages(config: Config) -> list[Stage]:
    return [Pricing()]
