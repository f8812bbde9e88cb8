"""The inventory's breaker: the shared `DependencyBreaker`, failing with the inventory's error."""

from __future__ import annotations

from extracted import dependency
from extracted.inventory.domain.errors import DependencyUnavailable


class DependencyBreaker(dependency.DependencyBreaker):
    """Raises `DependencyUnavailable` (the stock write fails fast and nothing changes here)."""

    def unavailable(self, *, maybe_done: bool) -> Exception:
        return DependencyUnavailable(self.name)
