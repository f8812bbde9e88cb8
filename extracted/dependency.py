"""Calling a dependency (another service, the legacy) over HTTP, the same way in both services:
an httpx client with bounded timeouts, and a pybreaker breaker that fails fast while it is down.

Each service subclasses `DependencyBreaker` to fail with its own `DependencyUnavailable`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pybreaker


def make_client(
    base_url: str,
    *,
    timeout: float = 3.0,
    connect_timeout: float = 1.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """An AsyncClient for one dependency, with bounded connect and total timeouts."""
    return httpx.AsyncClient(
        base_url=base_url.rstrip("/"),
        timeout=httpx.Timeout(timeout, connect=connect_timeout),
        transport=transport,
        headers={"Accept": "application/json"},
    )


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
    """Fails fast with the service's "unavailable" error while the dependency is known to be down.

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

    def unavailable(self, *, maybe_done: bool) -> Exception:
        """The error to raise when the dependency cannot be used (`maybe_done`: the request
        may have reached it). A service overrides it with its own error type."""
        raise NotImplementedError

    @property
    def state(self) -> str:
        """`closed`, `open` or `half-open`."""
        return str(self._cb.current_state)

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        """Run the body as one exchange with the dependency; raise `unavailable()` on failure."""
        trial = self._cb.current_state != pybreaker.STATE_CLOSED
        if trial:
            if self._trial_in_flight:
                raise self.unavailable(maybe_done=False)
            self._trial_in_flight = True
        try:
            with self._cb.calling():
                yield
        except pybreaker.CircuitBreakerError as exc:
            raise self.unavailable(maybe_done=False) from exc
        except DependencyFailure as exc:
            raise self.unavailable(maybe_done=exc.sent) from exc
        finally:
            if trial:
                self._trial_in_flight = False
