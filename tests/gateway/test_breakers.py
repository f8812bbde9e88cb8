"""Breaker state machine (pure, on an injected clock: no sleeps) — SPEC §4.3."""

from __future__ import annotations

from gateway import metrics
from gateway.breakers import (
    Breaker,
    BreakerRegistry,
    BreakerSettings,
    Closed,
    HalfOpen,
    Open,
)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(
    route: str, failures: int = 3, reset_after: float = 5.0, clock: Clock | None = None
) -> tuple[Breaker, Clock]:
    clock = clock or Clock()
    return BreakerRegistry(clock).get(route, "u", BreakerSettings(failures, reset_after)), clock


def opened(route: str, reset_after: float = 5.0) -> tuple[Breaker, Clock]:
    b, clock = make(route, failures=1, reset_after=reset_after)
    b.failure()
    assert b.phase == Open(clock.now + reset_after)
    return b, clock


def gauge(route: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(
        "gateway_breaker_state", {"route": route, "upstream": "u"}
    )


def transitions(route: str, to: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(
        "gateway_breaker_transitions_total", {"route": route, "upstream": "u", "to": to}
    )


def test_opens_after_consecutive_failures_only():
    b, clock = make("t-open")
    b.failure()
    b.failure()
    b.success()  # a success resets the count
    b.failure()
    b.failure()
    assert b.state == "closed" and b.failures == 2 and b.phase == Closed()
    b.failure()
    assert b.state == "open" and b.phase == Open(until=clock.now + 5.0)
    assert not b.allow()
    assert gauge("t-open") == 2
    assert transitions("t-open", "open") == 1
    assert b.retry_after() == 5


def test_stays_open_until_the_clock_reaches_until():
    b, clock = opened("t-until")
    clock.advance(4.99)
    assert not b.allow() and b.state == "open"
    assert b.retry_after() == 1
    clock.advance(0.01)
    assert b.allow() and b.phase == HalfOpen(trial=True)


def test_half_open_lets_exactly_one_trial_and_success_closes():
    b, clock = opened("t-half")
    clock.advance(5)
    assert b.allow() is True
    assert b.state == "half-open"
    assert gauge("t-half") == 1
    assert b.allow() is False  # a second concurrent request does not get through
    assert b.retry_after() == 1
    b.success()
    assert b.state == "closed" and b.failures == 0 and b.phase == Closed()
    assert b.allow()
    assert gauge("t-half") == 0
    assert transitions("t-half", "closed") == 1
    assert transitions("t-half", "half-open") == 1


def test_failed_trial_reopens_for_a_full_period_from_now():
    b, clock = opened("t-reopen")
    clock.advance(7)
    assert b.allow()
    b.failure()
    assert b.phase == Open(until=clock.now + 5)
    assert not b.allow()
    assert transitions("t-reopen", "open") == 2


def test_abandoned_trial_frees_the_slot():
    b, clock = opened("t-abandon")
    clock.advance(5)
    assert b.allow()
    b.abandon()
    assert b.phase == HalfOpen(trial=False)
    assert b.allow()


def test_pybreaker_timer_is_a_view_of_the_same_clock():
    # A late answer while open goes through pybreaker, which consults its own timer: it must
    # agree with ours, whatever the wall clock says.
    b, clock = opened("t-one-clock")
    b.success()  # an answer to a request let through before the breaker opened
    assert b.state == "open"
    b.failure()
    assert b.phase == Open(until=clock.now + 5)  # not re-opened: still the first period
    clock.advance(5)
    b.success()  # period over: pybreaker counts it as the trial, as it always has
    assert b.state == "closed"


def test_forced_open_and_closed_hold_until_reset():
    b, clock = make("t-forced")
    b.force_open()
    assert b.state == "open" and not b.allow()
    assert gauge("t-forced") == 2
    assert b.retry_after() == 5
    b.success()
    assert b.state == "open"
    b.force_closed()
    assert gauge("t-forced") == 0
    for _ in range(10):
        b.failure()
    assert b.state == "closed" and b.allow() and b.failures == 0
    b.reset()
    assert b.forced is None and b.state == "closed" and b.failures == 0


def test_reset_closes_an_open_breaker_and_clears_the_count():
    b, clock = make("t-reset")
    b.failure()
    b.reset()
    assert b.failures == 0
    b, clock = opened("t-reset-open")
    b.reset()
    assert b.phase == Closed() and b.allow() and gauge("t-reset-open") == 0


def test_reload_keeps_state_and_moves_the_open_timer_to_the_new_reset_after():
    reg = BreakerRegistry(clock := Clock())
    b = reg.get("keep", "u", BreakerSettings(1, 30))
    b.failure()
    assert b.state == "open"
    again = reg.get("keep", "u", BreakerSettings(2, 10))
    assert again is b and again.state == "open" and again.cb.fail_max == 2
    assert b.phase == Open(until=clock.now + 10)
    reg.get("gone", "u", BreakerSettings(1, 30))
    reg.retain([("keep", "u")])
    assert reg.find("gone", "u") is None
    assert reg.find("keep", "u") is b


def test_listener_hears_transitions_and_overrides_but_not_remote_state():
    reg = BreakerRegistry(Clock())
    b = reg.get("heard", "u", BreakerSettings(1, 30))
    heard: list[tuple[str, str]] = []
    reg.listener = lambda br: heard.append((br.route, br.state))  # set after the breaker exists
    b.failure()
    assert heard == [("heard", "open")]
    b.force_closed()
    assert heard[-1] == ("heard", "closed")
    heard.clear()
    b.apply_remote("open", "open", 1.0)
    assert heard == []
    assert reg.get("new", "u", BreakerSettings(1, 30)).listener is reg.listener


def test_apply_remote_adopts_open_with_its_age_and_close():
    b, clock = make("t-remote", reset_after=10)
    b.apply_remote("open", None, opened_ago=4.0)
    assert b.phase == Open(until=clock.now + 6) and gauge("t-remote") == 2
    assert b.opened_ago() == 4.0
    b.apply_remote("half-open", None, None)  # each replica sends its own trial
    assert b.state == "open"
    b.apply_remote("closed", "open", None)
    assert b.phase == Closed() and b.state == "open" and gauge("t-remote") == 2
    b.apply_remote("closed", None, None)
    assert b.state == "closed" and gauge("t-remote") == 0
