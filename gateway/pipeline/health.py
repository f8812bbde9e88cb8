"""The policy's HealthView over the targets' circuit breakers (gateway.breakers).

Endpoint pools (SPEC §4.10) extend `admit`: an upstream with no healthy endpoint is not
admitted, exactly like an open breaker. Outcomes are reported by the exchange stage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.runtime import Target

__all__ = ["HEALTH", "BreakerHealth"]


class BreakerHealth:
    """Health of a route's targets as their breakers see it."""

    __slots__ = ()

    def admit(self, target: Target) -> bool:
        """Closed: yes; open: no; half-open: yes for the one trial request (taken here)."""
        return target.breaker.allow()

    def retry_after(self, target: Target) -> int:
        return target.breaker.retry_after()


HEALTH = BreakerHealth()
