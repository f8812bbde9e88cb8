"""A pybreaker circuit breaker used correctly under asyncio, one per dependency."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pybreaker

from extracted.orders.domain.errors import DependencyUnavailable


class DependencyFailure(Exception):
    """The dependency itself failed (connect error, timeout, 5xx): the only thing that counts.

    `sent` is False when the request certainly never reached it (the connection failed).
    """

    def __init__(self, message: str, *, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent


def _not_a_dependency_failure(exc: BaseException) -> bool:
    return not isinstance(exc, DependencyFailure)


class DependencyBreaker:
    """Fails fast with `DependencyUnavailable` while the dependency is known to be down.

    pybreaker is synchronous: `calling()` wraps the awaited exchange (never `call(async_fn)`,
    which would record success without awaiting). Only `DependencyFailure` counts; anything
    else (our own cancellation, a business answer) is excluded. Half-open admits one trial at
    a time instead of every concurrent request.
    """

    def __init__(self, name: str, *, failures: int = 5, reset_after: float = 10.0) -> None:
        self.name = name
        self._cb = pybreaker.CircuitBreaker(
            fail_max=failures,
            reset_timeout=reset_after,
            name=name,
            exclude=[_not_a_dependency_failure],
        )
        self._trial_in_flight = False

    @property
    def state(self) -> str:
        """`closed`, `open` or `half-open`."""
        return str(self._cb.current_state)

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        """Run the body as one exchange with the dependency; raise DependencyUnavailable on failure."""
        trial = self._cb.current_state != pybreaker.STATE_CLOSED
        if trial:
            if self._trial_in_flight:
                raise DependencyUnavailable(self.name, maybe_done=False)
            self._trial_in_flight = True
        try:
            with self._cb.calling():
                yield
        except pybreaker.CircuitBreakerError as exc:
            raise DependencyUnavailable(self.name, maybe_done=False) from exc
        except DependencyFailure as exc:
            raise DependencyUnavailable(self.name, maybe_done=exc.sent) from exc
        finally:
            if trial:
                self._trial_in_flight = False
