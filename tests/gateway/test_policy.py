"""The policy core (gateway/policy.py), one table row per rule of SPEC §4.3. No sockets.

Where SPEC §4.3 leaves a case open, the row settles it and its comment says why.
Health is a fake HealthView: per upstream `closed`, `open`, `half-open` (the one trial is free)
or `trial-taken` (half-open, the trial is out). Every row also states which upstreams the
policy asked to admit, in order: asking takes a half-open trial, so asking too much is a bug.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from gateway.errors import BreakerOpen, GatewayTimeout, UpstreamFailed
from gateway.policy import (
    DELIVER,
    IDEMPOTENT_METHODS,
    RETRY,
    Fail,
    Forward,
    RoutePlan,
    after_error,
    after_status,
    choose,
    error_after,
    pick,
)


@dataclass(frozen=True)
class Up:
    """A target as the policy sees it."""

    name: str


A, B, F = Up("a"), Up("b"), Up("fb")


@dataclass
class Health:
    """A HealthView over fixed breaker states; records what it was asked."""

    states: dict[str, str] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def admit(self, target: Up) -> bool:
        self.asked.append(target.name)
        state = self.states.get(target.name, "closed")
        if state == "half-open":
            self.states[target.name] = "trial-taken"
            return True
        return state == "closed"

    def retry_after(self, target: Up) -> int:
        return 7


def plan(*, split: bool = False, fallback: bool = True, retries: int = 0) -> RoutePlan[Up]:
    targets, weights = ([A, B], [50, 50]) if split else ([A], [1])
    return RoutePlan(targets, weights, F if fallback else None, retries)


def first(rng_value: float) -> Any:
    return lambda: rng_value


# -- the first target: split, sticky, breakers ------------------------------------------------------
# fmt: off
# A row: split route?, fallback configured?, breaker states, random draw -> expected,
# admits asked, case.
CHOOSE = [
    (False, True,  {},                          0.0,  Forward(A),                    ["a"],             "plain route, closed"),
    (False, True,  {"a": "half-open"},          0.0,  Forward(A),                    ["a"],             "half-open: the one trial goes"),
    # The trial is out: later requests are treated as if the breaker were open.
    (False, True,  {"a": "trial-taken"},        0.0,  Forward(F, A, "breaker_open"), ["a", "fb"],       "half-open, trial out: fallback"),
    (False, True,  {"a": "open"},               0.0,  Forward(F, A, "breaker_open"), ["a", "fb"],       "open: fail fast to the fallback"),
    (False, False, {"a": "open"},               0.0,  Fail(BreakerOpen, "a", 7),     ["a"],             "open, no fallback: 503 + Retry-After"),
    # The fallback's own breaker guards it too: with both open, the client gets the primary's 503.
    (False, True,  {"a": "open", "fb": "open"}, 0.0,  Fail(BreakerOpen, "a", 7),     ["a", "fb"],       "open, fallback open too: 503"),
    (True,  True,  {},                          0.0,  Forward(A),                    ["a"],             "split by weight: low draw"),
    (True,  True,  {},                          0.99, Forward(B),                    ["b"],             "split by weight: high draw"),
    # Not a fallback (nothing counted): the other side of the split takes the open side's share.
    (True,  True,  {"b": "open"},               0.99, Forward(A),                    ["b", "a"],        "split side open: other side serves"),
    (True,  True,  {"a": "open", "b": "open"},  0.99, Forward(F, B, "breaker_open"), ["b", "a", "fb"],  "both sides open: fallback"),
    (True,  False, {"a": "open", "b": "open"},  0.0,  Fail(BreakerOpen, "a", 7),     ["a", "b"],        "both open, no fallback: 503"),
]
# fmt: on


@pytest.mark.parametrize(
    "split, fallback, states, rng, expected, asked",
    [row[:-1] for row in CHOOSE],
    ids=[row[-1] for row in CHOOSE],
)
def test_choose(split, fallback, states, rng, expected, asked) -> None:
    health = Health(dict(states))
    got = choose(plan(split=split, fallback=fallback), None, health, first(rng))
    assert got == expected
    assert health.asked == asked


# -- after a failed exchange ------------------------------------------------------------------------
S, NS = True, False  # request_sent
FB = "fallback"
# fmt: off
# A row: method, failure kind, request sent?, body replayable?, route retries, tries so far,
# fallback configured?, already on the fallback?, breaker states -> expected, admits asked, case.
ERRORS = [
    # Retries: idempotent methods, connect errors and timeouts, while attempts are left.
    ("GET",    "connect",  S,  True,  2, 1, True,  False, {},               RETRY, ["a"],       "GET connect: retried"),
    ("GET",    "timeout",  S,  True,  1, 1, True,  False, {},               RETRY, ["a"],       "GET timeout: retried"),
    ("PUT",    "timeout",  S,  True,  1, 1, True,  False, {},               RETRY, ["a"],       "PUT timeout: retried (idempotent)"),
    ("GET",    "timeout",  S,  True,  1, 2, True,  False, {},               FB,    ["fb"],      "GET timeout, retries used up: fallback"),
    ("GET",    "timeout",  S,  True,  0, 1, False, False, {},               504,   [],          "GET timeout, no retries, no fallback: 504"),
    ("GET",    "connect",  S,  True,  0, 1, False, False, {},               502,   [],          "GET connect, no retries, no fallback: 502"),
    ("DELETE", "timeout",  S,  True,  0, 1, True,  False, {},               FB,    ["fb"],      "DELETE timeout: fallback (idempotent)"),
    # SPEC names connect errors and timeouts only: a reset or a garbage answer is not retried;
    # for the fallback it counts like a timeout (the request may have been processed).
    ("GET",    "reset",    S,  True,  3, 1, True,  False, {},               FB,    ["fb"],      "GET reset: not retried, falls back"),
    ("GET",    "protocol", S,  True,  3, 1, False, False, {},               502,   [],          "GET protocol: not retried, 502"),
    # Retries are for idempotent methods only, even when the upstream never saw the request
    # (SPEC's retries line has no exception); the fallback is the way out for those.
    ("POST",   "connect",  NS, True,  2, 1, True,  False, {},               FB,    ["fb"],      "POST connect: not retried, falls back"),
    ("POST",   "connect",  NS, True,  2, 1, False, False, {},               502,   [],          "POST connect, no fallback: 502"),
    ("POST",   "timeout",  S,  True,  2, 1, True,  False, {},               504,   [],          "POST timeout after sending: 504"),
    ("PATCH",  "timeout",  S,  True,  1, 1, True,  False, {},               504,   [],          "PATCH timeout after sending: 504"),
    ("POST",   "reset",    S,  True,  0, 1, True,  False, {},               502,   [],          "POST reset after sending: 502"),
    # Failed before any request byte went out (e.g. waiting for a pooled connection): the
    # upstream never saw it, so a fallback cannot duplicate it, whatever the method.
    ("POST",   "timeout",  NS, True,  0, 1, True,  False, {},               FB,    ["fb"],      "POST timeout before sending: fallback"),
    ("POST",   "reset",    NS, True,  0, 1, True,  False, {},               FB,    ["fb"],      "POST reset before sending: fallback"),
    # Breakers gate retries and fallbacks alike.
    ("GET",    "connect",  S,  True,  2, 1, True,  False, {"a": "open"},    FB,    ["a", "fb"], "breaker now open: no retry, fallback"),
    ("GET",    "connect",  S,  True,  0, 1, True,  False, {"fb": "open"},   502,   ["fb"],      "fallback's breaker open: 502"),
    ("GET",    "timeout",  S,  True,  0, 1, True,  False, {"fb": "half-open"}, FB, ["fb"],      "fallback half-open: its trial"),
    # A streamed body already (partly) read cannot be sent again: neither retry nor fallback.
    ("PUT",    "connect",  S,  False, 2, 1, True,  False, {},               502,   [],          "PUT connect, stream consumed: 502"),
    ("PUT",    "timeout",  S,  False, 2, 1, True,  False, {},               504,   [],          "PUT timeout, stream consumed: 504"),
    # The fallback has no fallback of its own, but keeps the route's retries.
    ("GET",    "connect",  S,  True,  1, 1, True,  True,  {},               RETRY, ["a"],       "on the fallback: retried"),
    ("GET",    "connect",  S,  True,  1, 2, True,  True,  {},               502,   [],          "on the fallback, retries used up: 502"),
    ("POST",   "connect",  NS, True,  0, 1, True,  True,  {},               502,   [],          "on the fallback, POST connect: 502"),
]
# fmt: on


@pytest.mark.parametrize(
    "method, kind, sent, replayable, retries, tries, fallback, fell_back, states, expected, asked",
    [row[:-1] for row in ERRORS],
    ids=[row[-1] for row in ERRORS],
)
def test_after_error(
    method, kind, sent, replayable, retries, tries, fallback, fell_back, states, expected, asked
) -> None:
    health = Health(dict(states))
    got = after_error(
        plan(fallback=fallback, retries=retries),
        A,
        kind,
        request_sent=sent,
        idempotent=method in IDEMPOTENT_METHODS,
        replayable=replayable,
        tries=tries,
        fell_back=fell_back,
        health=health,
    )
    if expected == FB:
        assert got == Forward(F, A, kind)
    elif expected in (502, 504):
        assert got == Fail(GatewayTimeout if expected == 504 else UpstreamFailed, "a")
        assert isinstance(got, Fail) and got.error.status == expected
    else:
        assert got is expected
    assert health.asked == asked


# -- after an answer --------------------------------------------------------------------------------
# fmt: off
# A row: method, status, body streamed?, fallback configured?, already on the fallback?,
# breaker states -> expected, admits asked, case.
STATUSES = [
    ("GET",  200, False, True,  False, {},             DELIVER, [],     "200: delivered"),
    ("GET",  404, False, True,  False, {},             DELIVER, [],     "404: delivered, not a failure"),
    ("POST", 499, False, True,  False, {},             DELIVER, [],     "499: delivered"),
    ("GET",  500, False, True,  False, {},             FB,      ["fb"], "GET 500: fallback"),
    ("HEAD", 503, False, True,  False, {},             FB,      ["fb"], "HEAD 503: fallback"),
    ("PUT",  500, False, True,  False, {},             FB,      ["fb"], "PUT 500, body in memory: fallback"),
    # Otherwise the upstream's own 5xx answer is passed through unchanged (SPEC §4.2).
    ("GET",  502, False, False, False, {},             DELIVER, [],     "GET 502, no fallback: delivered"),
    ("POST", 500, False, True,  False, {},             DELIVER, [],     "POST 500: delivered (not idempotent)"),
    ("PUT",  500, True,  True,  False, {},             DELIVER, [],     "PUT 500, body streamed: delivered"),
    ("GET",  500, False, True,  False, {"fb": "open"}, DELIVER, ["fb"], "GET 500, fallback open: delivered"),
    ("GET",  500, False, True,  True,  {},             DELIVER, [],     "GET 500 from the fallback: delivered"),
]
# fmt: on


@pytest.mark.parametrize(
    "method, status, streamed, fallback, fell_back, states, expected, asked",
    [row[:-1] for row in STATUSES],
    ids=[row[-1] for row in STATUSES],
)
def test_after_status(
    method, status, streamed, fallback, fell_back, states, expected, asked
) -> None:
    health = Health(dict(states))
    # Retries never apply to an answer, however many the route allows.
    got = after_status(
        plan(fallback=fallback, retries=3),
        A,
        status,
        idempotent=method in IDEMPOTENT_METHODS,
        streamed=streamed,
        fell_back=fell_back,
        health=health,
    )
    assert got == (Forward(F, A, "status") if expected == FB else expected)
    assert health.asked == asked


# -- the split itself -------------------------------------------------------------------------------
def test_weights_share_the_draw_in_proportion() -> None:
    p = RoutePlan([A, B], [10, 90], None, 0)
    draws = [i / 1000 for i in range(1000)]
    sides = [pick(p, None, first(d)) for d in draws]
    assert sides.count(0) == 100 and sides.count(1) == 900


def test_sticky_value_keeps_a_client_on_one_side_whatever_the_draw() -> None:
    p = RoutePlan([A, B], [50, 50], None, 0)
    for customer in ("c-1", "c-2", "c-3", "c-42"):
        sides = {pick(p, customer, first(d)) for d in (0.0, 0.5, 0.99)}
        assert len(sides) == 1
    spread = {pick(p, f"customer-{i}") for i in range(50)}
    assert spread == {0, 1}


def test_sticky_value_from_non_utf8_header_bytes_hashes_as_bytes() -> None:
    # aiohttp decodes header bytes as UTF-8 with surrogateescape; such a value must not crash.
    p = RoutePlan([A, B], [50, 50], None, 0)
    value = b"caf\xe9".decode("utf-8", "surrogateescape")
    assert pick(p, value) == pick(p, value)


def test_single_target_ignores_weights_and_draw() -> None:
    assert pick(RoutePlan([A], [5], None, 0), "x", first(0.99)) == 0


def test_common_decision_is_built_once_per_plan() -> None:
    p = plan()
    assert choose(p, None, Health()) is choose(p, None, Health())


@pytest.mark.parametrize(("targets", "weights"), [([], []), ([A], [0]), ([A, B], [1]), ([A], [-1])])
def test_plan_rejects_a_route_without_positive_weights(targets, weights) -> None:
    with pytest.raises(ValueError):
        RoutePlan(targets, weights, None, 0)


@pytest.mark.parametrize(
    ("kind", "status"), [("timeout", 504), ("connect", 502), ("reset", 502), ("protocol", 502)]
)
def test_error_after_failure_kind(kind: str, status: int) -> None:
    assert error_after(kind).status == status


def test_idempotent_methods_are_rfc_9110s() -> None:
    assert {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"} == IDEMPOTENT_METHODS
    assert not {"POST", "PATCH", "CONNECT"} & IDEMPOTENT_METHODS
