"""The orders' breaker: the shared `DependencyBreaker`, failing with the orders' error."""

from __future__ import annotations

from extracted import dependency
from extracted.orders.domain.errors import DependencyUnavailable


class DependencyBreaker(dependency.DependencyBreaker):
    """Raises `DependencyUnavailable`, saying whether the request may have reached the
    dependency (a cancel is dropped again only when it certainly did not)."""

    def unavailable(self, *, maybe_done: bool) -> Exception:
        return DependencyUnavailable(self.name, maybe_done=maybe_done)
