"""Per-(route, upstream) circuit breakers: one state machine on one injected clock (SPEC §4.3).

A breaker's state is one value, `Closed | Open(until) | HalfOpen(trial)`, on `Breaker.phase`.
pybreaker (SPEC §1) decides the transitions through its storage interface: `_Storage` shows it
the phase and turns each of its state writes into one call of `Breaker._enter`, which sets the
new phase, keeps the metrics in step and tells the listener. pybreaker's own timer is a view of
ours: `_Storage.opened_at` is derived from `Open.until`, so the open timeout runs on the one clock
(`time.monotonic` unless a test injects another). Tests move that clock instead of sleeping.

The hot path asks `allow()` before an upstream call (no lock, no pybreaker call while closed) and
reports the upstream's outcome with `success()` / `failure()`; only the UPSTREAM's failures are
reported (a client hanging up is `abandon()`). Half-open admits exactly one trial at a time. An
admin override (`force_open` / `force_closed`) holds until `reset`. pybreaker is synchronous:
`calling()` wraps no await here, it only records an outcome that is already known (STYLE.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal, Protocol

import pybreaker

from gateway import metrics
from gateway.table import BreakerSettings  # defined with the compiled route; exported here too

__all__ = [
    "CLOSED",
    "HALF_OPEN",
    "OPEN",
    "STATE_VALUE",
    "Breaker",
    "BreakerLimits",
    "BreakerRegistry",
    "BreakerSettings",
    "Clock",
    "Closed",
    "Forced",
    "HalfOpen",
    "Listener",
    "Open",
    "Phase",
]

CLOSED, HALF_OPEN, OPEN = pybreaker.STATE_CLOSED, pybreaker.STATE_HALF_OPEN, pybreaker.STATE_OPEN
STATE_VALUE = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}  # gateway_breaker_state's encoding

Clock = Callable[[], float]  # seconds; only differences matter (time.monotonic by default)
Forced = Literal["open", "closed"]


@dataclass(frozen=True, slots=True)
class Closed:
    """Requests go through; pybreaker counts consecutive failures."""

    name: ClassVar[str] = CLOSED


@dataclass(frozen=True, slots=True)
class Open:
    """Fail fast until `until` (clock time); then the next request becomes the trial."""

    until: float
    name: ClassVar[str] = OPEN


@dataclass(frozen=True, slots=True)
class HalfOpen:
    """One trial request decides: `trial` tells whether it is in flight."""

    trial: bool
    name: ClassVar[str] = HALF_OPEN


Phase = Closed | Open | HalfOpen

_CLOSED = Closed()
_NO_TRIAL = HalfOpen(trial=False)
_IN_TRIAL = HalfOpen(trial=True)


class BreakerLimits(Protocol):
    """What a breaker is configured with: a compiled route's `BreakerSettings` (gateway.table)."""

    @property
    def failures(self) -> int: ...

    @property
    def reset_after(self) -> float: ...


Listener = Callable[["Breaker"], None]


class _UpstreamFailure(Exception):
    """Carries an upstream failure into pybreaker's accounting."""


class _Storage(pybreaker.CircuitMemoryStorage):
    """pybreaker's storage interface over one breaker's phase; its state writes are transitions.

    The failure and success counters are pybreaker's in-memory ones."""

    def __init__(self, breaker: Breaker) -> None:
        super().__init__(breaker.phase.name)
        self._breaker = breaker

    @property
    def state(self) -> str:
        return self._breaker.phase.name

    @state.setter
    def state(self, state: str) -> None:
        self._breaker._enter(state)

    @property
    def opened_at(self) -> datetime | None:
        # pybreaker compares this + reset_timeout with datetime.now(): project Open.until into
        # that frame at the moment it asks, so its timer and ours are one.
        b = self._breaker
        phase = b.phase
        if not isinstance(phase, Open):
            return None
        left = phase.until - b._clock() - b.cb.reset_timeout
        return datetime.now(UTC) + timedelta(seconds=left)

    @opened_at.setter
    def opened_at(self, _: datetime) -> None:
        pass  # Open.until is set from our clock when pybreaker writes the open state


class Breaker:
    """One route's breaker for one upstream."""

    __slots__ = (
        "route",
        "upstream",
        "phase",
        "forced",
        "listener",
        "cb",
        "_clock",
        "_storage",
        "_state_gauge",
        "_transitions",
    )

    def __init__(
        self,
        route: str,
        upstream: str,
        settings: BreakerLimits,
        *,
        clock: Clock = time.monotonic,
        listener: Listener | None = None,
    ) -> None:
        self.route = route
        self.upstream = upstream
        self.phase: Phase = _CLOSED
        self.forced: Forced | None = None  # an admin override, held until reset()
        # Told of every local transition and admin override (the Redis sync), never of apply_remote.
        self.listener = listener
        self._clock = clock
        self._state_gauge = metrics.BREAKER_STATE.labels(route, upstream)
        self._transitions = {
            s: metrics.BREAKER_TRANSITIONS.labels(route, upstream, s) for s in STATE_VALUE
        }
        self._state_gauge.set(0)
        self._storage = _Storage(self)
        self.cb = pybreaker.CircuitBreaker(
            fail_max=int(settings.failures),
            reset_timeout=float(settings.reset_after),
            name=f"{route}/{upstream}",
            state_storage=self._storage,
        )

    # -- state -------------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        """closed | half-open | open, as the admin API reports it (an override wins)."""
        forced = self.forced
        if forced is not None:
            return OPEN if forced == "open" else CLOSED
        return self.phase.name

    @property
    def failures(self) -> int:
        """Consecutive upstream failures counted so far."""
        return self._storage.counter

    def retry_after(self) -> int:
        """Seconds until a half-open trial may happen (for Retry-After), at least 1."""
        if self.forced == "open":
            return max(1, int(self.cb.reset_timeout))
        phase = self.phase
        left = phase.until - self._clock() if isinstance(phase, Open) else 0.0
        return max(1, int(left + 0.999))

    def opened_ago(self) -> float | None:
        """Seconds since the breaker opened, if it is open (for other replicas)."""
        phase = self.phase
        if not isinstance(phase, Open):
            return None
        return self._clock() - (phase.until - self.cb.reset_timeout)

    def update_settings(self, settings: BreakerLimits) -> None:
        """Apply new failures / reset_after from a reload; state and counts are kept."""
        before = self.cb.reset_timeout
        self.cb.fail_max = int(settings.failures)
        self.cb.reset_timeout = float(settings.reset_after)
        phase = self.phase
        if isinstance(phase, Open):  # the open timer runs from when it opened, as configured now
            self.phase = Open(phase.until - before + self.cb.reset_timeout)

    # -- hot path ----------------------------------------------------------------------------------
    def allow(self) -> bool:
        """May a request go to the upstream now? In half-open, True for exactly one trial at a time."""
        phase = self.phase
        forced = self.forced
        if phase is _CLOSED and forced is None:
            return True
        if forced is not None:
            return forced == "closed"
        if isinstance(phase, Open):
            if self._clock() < phase.until:
                return False
            self.cb.half_open()  # through pybreaker: the phase becomes HalfOpen(trial=False)
            phase = self.phase
        if not isinstance(phase, HalfOpen) or phase.trial:
            return False
        self.phase = _IN_TRIAL
        return True

    def success(self) -> None:
        """The upstream answered (below 500)."""
        if self.forced is not None:
            return
        if self.phase is _CLOSED and self._storage.counter == 0:
            return  # nothing for pybreaker to change: keep the common case free
        try:
            with self.cb.calling():
                pass
        except pybreaker.CircuitBreakerError:
            pass

    def failure(self) -> None:
        """The upstream failed: connect error, timeout, reset, or a 5xx answer."""
        if self.forced is not None:
            return
        try:
            with self.cb.calling():
                raise _UpstreamFailure
        except (_UpstreamFailure, pybreaker.CircuitBreakerError):
            pass

    def abandon(self) -> None:
        """The request ended without an upstream verdict (the client left): free the half-open trial."""
        if self.phase is _IN_TRIAL:
            self.phase = _NO_TRIAL

    # -- admin -------------------------------------------------------------------------------------
    def force_open(self) -> None:
        """Kill switch: held open (no upstream call) until reset."""
        self.forced = "open"
        self._changed()

    def force_closed(self) -> None:
        """Held closed: failures are ignored until reset."""
        self.forced = "closed"
        self._changed()

    def reset(self) -> None:
        """Clear any override and the failure count: back to closed."""
        self.forced = None
        if self.phase is _CLOSED:
            self._storage.reset_counter()
        else:
            self.cb.close()
        self._changed()

    # -- replication -------------------------------------------------------------------------------
    def apply_remote(self, state: str, forced: Forced | None, opened_ago: float | None) -> None:
        """Adopt what another replica published (the Redis sync; never on the hot path).

        The listener does not hear it: it is not this replica's change to publish."""
        listener, self.listener = self.listener, None
        try:
            self.forced = forced
            current = self.phase.name
            if state == OPEN and current != OPEN:
                self.cb.open()
                if opened_ago is not None:
                    self.phase = Open(self._clock() - opened_ago + self.cb.reset_timeout)
            elif state == CLOSED and current != CLOSED:
                self.cb.close()
            # A remote half-open is not adopted: each replica sends its own single trial.
            self._show()
        finally:
            self.listener = listener

    def snapshot(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "upstream": self.upstream,
            "state": self.state,
            "forced": self.forced,
            "failures": self.failures,
        }

    # -- internals ---------------------------------------------------------------------------------
    def _enter(self, state: str) -> None:
        """pybreaker wrote `state`: the one place a transition happens."""
        if state == OPEN:
            self.phase = Open(self._clock() + self.cb.reset_timeout)
        elif state == HALF_OPEN:
            self.phase = _NO_TRIAL
        elif state == CLOSED:
            self.phase = _CLOSED
        else:
            raise ValueError(f"unknown breaker state {state!r}")
        self._transitions[state].inc()
        self._changed()

    def _changed(self) -> None:
        self._show()
        if self.listener is not None:
            self.listener(self)

    def _show(self) -> None:
        self._state_gauge.set(STATE_VALUE[self.state])


class BreakerRegistry:
    """All breakers, keyed by (route, upstream); survives reloads for unchanged route names."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._breakers: dict[tuple[str, str], Breaker] = {}
        self._clock = clock
        self._listener: Listener | None = None

    @property
    def listener(self) -> Listener | None:
        """Told of every breaker's local transitions and admin overrides (the Redis sync)."""
        return self._listener

    @listener.setter
    def listener(self, listener: Listener | None) -> None:
        self._listener = listener
        for b in self._breakers.values():
            b.listener = listener

    def get(self, route: str, upstream: str, settings: BreakerLimits) -> Breaker:
        """The breaker for (route, upstream), created or updated with `settings`."""
        key = (route, upstream)
        b = self._breakers.get(key)
        if b is None:
            b = Breaker(route, upstream, settings, clock=self._clock, listener=self._listener)
            self._breakers[key] = b
        else:
            b.update_settings(settings)
        return b

    def retain(self, keys: Iterable[tuple[str, str]]) -> None:
        """Forget breakers of routes that no longer exist (after a reload)."""
        keep = set(keys)
        for key in list(self._breakers):
            if key not in keep:
                del self._breakers[key]
                metrics.BREAKER_STATE.remove(*key)

    def all(self) -> list[Breaker]:
        return [self._breakers[k] for k in sorted(self._breakers)]

    def find(self, route: str, upstream: str) -> Breaker | None:
        return self._breakers.get((route, upstream))
