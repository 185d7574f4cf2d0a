"""The router: which deployment serves a request, and where it goes when that one fails.

`groups` resolves names (exact, bare, wildcard) and picks a deployment; `failover` walks
retries and fallbacks; `cooldown` skips deployments that keep failing, shared between
instances through Redis by `shared`; `policy` sorts errors into LiteLLM's classes.
"""

from .groups import Router, Wildcard
from .settings import RoutingSettings

__all__ = ["Router", "RoutingSettings", "Wildcard"]
