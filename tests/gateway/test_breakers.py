"""Breaker state machine (pure) — SPEC §4.3."""

from __future__ import annotations

import time

from gateway import metrics
from gateway.breakers import Breaker, BreakerRegistry, BreakerSettings


def make(failures: int = 3, reset_after: float = 0.2, route: str = "r") -> Breaker:
    return BreakerRegistry().get(route, "u", BreakerSettings(failures, reset_after))


def gauge(route: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(
        "gateway_breaker_state", {"route": route, "upstream": "u"}
    )


def test_opens_after_consecutive_failures_only():
    b = make(route="t-open")
    b.failure()
    b.failure()
    b.success()  # a success resets the count
    b.failure()
    b.failure()
    assert b.state == "closed" and b.failures == 2
    b.failure()
    assert b.state == "open"
    assert not b.allow()
    assert gauge("t-open") == 2
    assert 1 <= b.retry_after() <= 1


def test_half_open_lets_exactly_one_trial_and_success_closes():
    b = make(route="t-half")
    for _ in range(3):
        b.failure()
    time.sleep(0.25)
    assert b.allow() is True
    assert b.state == "half-open"
    assert gauge("t-half") == 1
    assert b.allow() is False  # a second concurrent request does not get through
    b.success()
    assert b.state == "closed" and b.failures == 0
    assert b.allow()
    transitions = metrics.REGISTRY.get_sample_value(
        "gateway_breaker_transitions_total", {"route": "t-half", "upstream": "u", "to": "closed"}
    )
    assert transitions == 1


def test_failed_trial_reopens():
    b = make(route="t-reopen")
    for _ in range(3):
        b.failure()
    time.sleep(0.25)
    assert b.allow()
    b.failure()
    assert b.state == "open"
    assert not b.allow()


def test_abandoned_trial_frees_the_slot():
    b = make(route="t-abandon")
    for _ in range(3):
        b.failure()
    time.sleep(0.25)
    assert b.allow()
    b.abandon()
    assert b.allow()


def test_forced_open_and_closed_hold_until_reset():
    b = make(route="t-forced")
    b.force_open()
    assert b.state == "open" and not b.allow()
    b.success()
    assert b.state == "open"
    b.force_closed()
    for _ in range(10):
        b.failure()
    assert b.state == "closed" and b.allow()
    b.reset()
    assert b.forced is None and b.state == "closed" and b.failures == 0


def test_registry_keeps_state_across_reload_and_forgets_removed_routes():
    reg = BreakerRegistry()
    b = reg.get("keep", "u", BreakerSettings(1, 30))
    b.failure()
    assert b.state == "open"
    again = reg.get("keep", "u", BreakerSettings(2, 10))
    assert again is b and again.state == "open" and again.cb.fail_max == 2
    reg.get("gone", "u", BreakerSettings(1, 30))
    reg.retain([("keep", "u")])
    assert reg.find("gone", "u") is None
    assert reg.find("keep", "u") is b


def test_listener_hears_transitions_and_overrides():
    reg = BreakerRegistry()
    heard: list[tuple[str, str]] = []
    reg.listener = lambda br: heard.append((br.route, br.state))
    b = reg.get("heard", "u", BreakerSettings(1, 30))
    b.failure()
    assert ("heard", "open") in heard
