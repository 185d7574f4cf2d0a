"""Which deployment serves a request: groups of deployments under one public model name."""

from __future__ import annotations

import random
from collections.abc import Iterable

from .providers.registry import Deployment


class Router:
    def __init__(self, deployments: Iterable[Deployment]) -> None:
        self.groups: dict[str, list[Deployment]] = {}
        for dep in deployments:
            self.groups.setdefault(dep.model_name, []).append(dep)

    def names(self) -> list[str]:
        return list(self.groups)

    def pick(self, model_name: str, prefer: str | None = None) -> Deployment | None:
        """A deployment of the group; the one named by `prefer` (a Deployment.id) when it is
        in the group, so a continuation lands where the upstream already holds the state."""
        group = self.groups.get(model_name)
        if not group:
            return None
        if prefer is not None:
            for dep in group:
                if dep.id == prefer:
                    return dep
        return group[0] if len(group) == 1 else random.choice(group)
