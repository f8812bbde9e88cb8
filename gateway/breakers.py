"""Per-(route, upstream) circuit breakers on pybreaker, safe for asyncio (SPEC §4.3, STYLE.md).

pybreaker stays the source of truth for state transitions. The hot path asks `allow()` (no I/O, no lock in
the common closed state) before an upstream call and reports the upstream's outcome with `success()` /
`failure()` after it; only the UPSTREAM's failures are reported (a client hanging up is neither). Half-open
lets exactly one trial request through. An admin override (`force_open` / `force_closed`) holds until `reset`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pybreaker

from gateway import metrics

CLOSED, HALF_OPEN, OPEN = pybreaker.STATE_CLOSED, pybreaker.STATE_HALF_OPEN, pybreaker.STATE_OPEN
STATE_VALUE = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


class _UpstreamFailure(Exception):
    """Carries an upstream failure into pybreaker's accounting."""


class SharedStateStorage(pybreaker.CircuitMemoryStorage):
    """pybreaker's in-memory storage that reports every state write to `on_change` (no I/O here)."""

    def __init__(self, state: str) -> None:
        super().__init__(state)
        self.on_change: Any = None
        self.changed_at = 0.0
        self._applying = False

    @property  # type: ignore[override]
    def state(self) -> str:
        return str(self._state)

    @state.setter
    def state(self, state: str) -> None:
        self._state = state
        if not self._applying:
            self.changed_at = time.time()
            if self.on_change is not None:
                self.on_change()

    @contextlib.contextmanager
    def remote(self, updated: float) -> Iterator[None]:
        """State written inside is another replica's: not reported back, stamped with its time."""
        self._applying = True
        try:
            yield
        finally:
            self._applying = False
            self.changed_at = updated


class _MetricsListener(pybreaker.CircuitBreakerListener):
    """Keeps gateway_breaker_state / _transitions_total in step with pybreaker (sync: no I/O here)."""

    def __init__(self, owner: Breaker) -> None:
        self.owner = owner

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        name = new_state.name
        self.owner._on_state(name)


@dataclass(frozen=True)
class BreakerSettings:
    failures: int
    reset_after: float


class Breaker:
    """One route's breaker for one upstream."""

    __slots__ = (
        "route",
        "upstream",
        "cb",
        "forced",
        "_trial",
        "_opened_mono",
        "_state_gauge",
        "_transitions",
        "on_change",
        "forced_at",
        "storage",
    )

    def __init__(self, route: str, upstream: str, settings: BreakerSettings) -> None:
        self.route = route
        self.upstream = upstream
        self.forced: str | None = None
        self.forced_at = (
            0.0  # wall-clock time of the last admin override (newest wins across replicas)
        )
        self._trial = False
        self._opened_mono = 0.0
        self._state_gauge = metrics.BREAKER_STATE.labels(route, upstream)
        self._transitions = {
            s: metrics.BREAKER_TRANSITIONS.labels(route, upstream, s) for s in STATE_VALUE
        }
        self._state_gauge.set(0)
        # Called with (breaker, new_state) on every transition; the Redis sync hooks in here.
        self.on_change: Callable[[Breaker, str], None] | None = None
        self.storage = SharedStateStorage(CLOSED)
        self.storage.on_change = self._stored
        self.cb = pybreaker.CircuitBreaker(
            fail_max=settings.failures,
            reset_timeout=settings.reset_after,
            name=f"{route}/{upstream}",
            listeners=[_MetricsListener(self)],
            state_storage=self.storage,
        )

    # -- state -----------------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        """closed | half-open | open, as the admin API reports it (an override wins)."""
        if self.forced == "open":
            return OPEN
        if self.forced == "closed":
            return CLOSED
        return str(self.cb.current_state)

    @property
    def failures(self) -> int:
        return int(self.cb.fail_counter)

    def retry_after(self) -> int:
        """Seconds until a half-open trial may happen (for Retry-After), at least 1."""
        if self.forced == "open":
            return max(1, int(self.cb.reset_timeout))
        left = self._opened_mono + self.cb.reset_timeout - time.monotonic()
        return max(1, int(left + 0.999))

    def update_settings(self, settings: BreakerSettings) -> None:
        """Apply new failures / reset_after from a reload; state and counts are kept."""
        self.cb.fail_max = settings.failures
        self.cb.reset_timeout = settings.reset_after

    def _on_state(self, name: str) -> None:
        if name == OPEN:
            self._opened_mono = time.monotonic()
        if name != HALF_OPEN:
            self._trial = False
        self._state_gauge.set(STATE_VALUE[name])
        self._transitions[name].inc()

    def _stored(self) -> None:
        # pybreaker wrote a new state into our storage: tell the registry (and so the Redis sync).
        if self.on_change is not None:
            self.on_change(self, self.storage.state)

    # -- hot path --------------------------------------------------------------------------------------
    def allow(self) -> bool:
        """May a request go to the upstream now? In half-open, True for exactly one trial at a time."""
        if self.forced is not None:
            return self.forced == "closed"
        state = self.cb.current_state
        if state == CLOSED:
            return True
        if state == OPEN:
            if time.monotonic() < self._opened_mono + self.cb.reset_timeout:
                return False
            self.cb.half_open()
        if self._trial:
            return False
        self._trial = True
        return True

    def success(self) -> None:
        """The upstream answered (below 500)."""
        if self.forced is not None:
            return
        if self.cb.current_state == CLOSED and self.cb.fail_counter == 0:
            return  # nothing for pybreaker to change: keep the common case free
        try:
            with self.cb.calling():
                pass
        except pybreaker.CircuitBreakerError:
            pass
        self._trial = False

    def failure(self) -> None:
        """The upstream failed: connect error, timeout, reset, or a 5xx answer."""
        if self.forced is not None:
            return
        try:
            with self.cb.calling():
                raise _UpstreamFailure
        except (_UpstreamFailure, pybreaker.CircuitBreakerError):
            pass
        self._trial = False

    def abandon(self) -> None:
        """The request ended without an upstream verdict (the client left): free the half-open trial."""
        self._trial = False

    # -- admin -----------------------------------------------------------------------------------------
    def force_open(self) -> None:
        """Kill switch: held open (no upstream call) until reset."""
        self.forced = "open"
        self.forced_at = time.time()
        self._state_gauge.set(STATE_VALUE[OPEN])

    def force_closed(self) -> None:
        """Held closed: failures are ignored until reset."""
        self.forced = "closed"
        self.forced_at = time.time()
        self._state_gauge.set(STATE_VALUE[CLOSED])

    def reset(self) -> None:
        """Clear any override and the failure count: back to closed."""
        self.forced = None
        self.forced_at = time.time()
        self._trial = False
        if self.cb.current_state != CLOSED:
            self.cb.close()
        else:
            self.cb._state_storage.reset_counter()
        self._state_gauge.set(0)

    def apply_remote(self, state: str, forced: str | None, opened_ago: float | None) -> None:
        """Adopt a state another replica published (used by the Redis sync; never on the hot path)."""
        self.forced = forced
        if forced is not None:
            self._state_gauge.set(STATE_VALUE[OPEN if forced == "open" else CLOSED])
        current = self.cb.current_state
        if state == current:
            return
        if state == OPEN:
            self.cb.open()
            if opened_ago is not None:
                self._opened_mono = time.monotonic() - opened_ago
        elif state == CLOSED:
            self.cb.close()
        elif state == HALF_OPEN and current == OPEN:
            pass  # half-open is local: each replica sends its own single trial

    def snapshot(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "upstream": self.upstream,
            "state": self.state,
            "forced": self.forced,
            "failures": self.failures,
        }


class BreakerRegistry:
    """All breakers, keyed by (route, upstream); survives reloads for unchanged route names."""

    def __init__(self) -> None:
        self._breakers: dict[tuple[str, str], Breaker] = {}
        # Told of every state change and admin override (the Redis sync pushes them to other replicas).
        self.listener: Callable[[Breaker], None] | None = None

    def get(self, route: str, upstream: str, settings: BreakerSettings) -> Breaker:
        """The breaker for (route, upstream), created or updated with `settings`."""
        key = (route, upstream)
        b = self._breakers.get(key)
        if b is None:
            b = Breaker(route, upstream, settings)
            b.on_change = self._changed
            self._breakers[key] = b
        else:
            b.update_settings(settings)
        return b

    def _changed(self, breaker: Breaker, state: str) -> None:
        self.publish(breaker)

    def publish(self, breaker: Breaker) -> None:
        """Tell the listener (if any) that `breaker` changed: a transition or an admin override."""
        if self.listener is not None:
            self.listener(breaker)

    def retain(self, keys: Iterable[tuple[str, str]]) -> None:
        """Forget breakers of routes that no longer exist (after a reload)."""
        keep = set(keys)
        for key in list(self._breakers):
            if key not in keep:
                del self._breakers[key]
                metrics.BREAKER_STATE.remove(*key)

    def for_route(self, route: str) -> list[Breaker]:
        return [b for (r, _), b in self._breakers.items() if r == route]

    def all(self) -> list[Breaker]:
        return [self._breakers[k] for k in sorted(self._breakers)]

    def find(self, route: str, upstream: str) -> Breaker | None:
        return self._breakers.get((route, upstream))
