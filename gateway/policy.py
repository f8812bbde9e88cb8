"""The policy core (SPEC §4.3): which upstream serves a request, and what follows each outcome.

Pure: no I/O, no aiohttp, no clock. The pipeline (gateway.pipeline) asks and then acts:

    step = choose(plan, sticky_value, health)           # Forward(target[, fallback reason]) | Fail
    ... exchange with step.target ...
    step = after_error(plan, target, kind, ...)         # Retry | Forward(fallback) | Fail
    step = after_status(plan, target, status, ...)      # Deliver | Forward(fallback)

The rules, one row each in tests/gateway/test_policy.py:

- a split picks a side by weight; a sticky value hashes to the same side every time;
- a side whose breaker is open sends its share to another side of the split; with none left,
  the `fallback` serves (reason `breaker_open`); without one: 503 BreakerOpen with Retry-After;
- retries (`retries: {attempts}`) only for idempotent methods, only after a connect error or a
  timeout, only while the body can be sent again and the breaker still admits the upstream;
- fallback after a connect error, or a failure before any request byte went out, for every
  method; after a timeout, a reset or a garbage answer only for idempotent methods; after a 5xx
  answer only for idempotent methods whose body was not streamed; never from the fallback itself;
- otherwise the client gets 504 after a timeout, 502 after any other failure, and an
  upstream's own 5xx answer unchanged.

Health is a port (:class:`HealthView`): today the targets' circuit breakers. Endpoint pools
(SPEC §4.10) plug in behind the same port: "an upstream with no healthy endpoint behaves like an
open breaker", so `admit` answers for the breaker and the endpoints together, and the chosen
upstream's pool picks the endpoint.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from random import random
from typing import Generic, Protocol, TypeVar

from gateway.errors import BreakerOpen, GatewayError, GatewayTimeout, UpstreamFailed

# RFC 9110 §9.2.2. Retries and fallbacks after the request may have reached the upstream are
# limited to these (one definition, shared with the pool's stale-connection retry).
from gateway.upstream import IDEMPOTENT_METHODS

__all__ = [
    "DELIVER",
    "FAILURE_STATUS",
    "IDEMPOTENT_METHODS",
    "RETRY",
    "Deliver",
    "Fail",
    "Forward",
    "HealthView",
    "Retry",
    "RoutePlan",
    "after_error",
    "after_status",
    "choose",
    "error_after",
    "pick",
]

FAILURE_STATUS = 500  # an answer at or above this counts against the breaker (SPEC §4.3)
RETRIED_KINDS = frozenset({"connect", "timeout"})  # SPEC §4.1 `retries`


class Named(Protocol):
    """A target as the policy sees it: only its upstream's name (for errors and metrics)."""

    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Named)
T_contra = TypeVar("T_contra", bound=Named, contravariant=True)


class HealthView(Protocol[T_contra]):
    """The current health of a route's targets (breakers today; endpoint pools later)."""

    def admit(self, target: T_contra) -> bool:
        """May a request go to `target` now? Closed: yes. Open: no. Half-open: yes for the one
        trial request, which this call takes (so the policy calls it only when it would send)."""
        ...

    def retry_after(self, target: T_contra) -> int:
        """Seconds until `target` may be tried again (the 503's Retry-After), at least 1."""
        ...


class RoutePlan(Generic[T]):
    """What the policy needs of one route, compiled once per table (gateway.runtime).

    `targets` are the sides of the split (one for a plain route), with their `weights`;
    `fallback` is the route's fallback target, if any; `retries` is `retries.attempts`.
    """

    __slots__ = ("targets", "cumulative", "total_weight", "fallback", "retries", "forwards")

    def __init__(
        self, targets: Sequence[T], weights: Sequence[int], fallback: T | None, retries: int
    ) -> None:
        if not targets or len(targets) != len(weights) or min(weights) <= 0:
            raise ValueError("a route needs at least one target, each with a positive weight")
        self.targets = tuple(targets)
        acc = 0
        cumulative = []
        for w in weights:
            acc += w
            cumulative.append(acc)
        self.cumulative = tuple(cumulative)
        self.total_weight = acc
        self.fallback = fallback
        self.retries = retries
        # The common decision, built once: no allocation per request.
        self.forwards: tuple[Forward[T], ...] = tuple(Forward(t) for t in targets)


@dataclass(frozen=True, slots=True)
class Forward(Generic[T]):
    """Send the request to `target`. With `source` set, it is the route's fallback serving
    instead of `source` (`reason`: gateway_fallbacks_total's label)."""

    target: T
    source: T | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Fail:
    """Answer the client with the gateway's own `error` (502, 503 or 504), naming `upstream`."""

    error: type[GatewayError]
    upstream: str
    retry_after: int | None = None  # for BreakerOpen's Retry-After header


class Retry:
    """Send the request to the same target again."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "RETRY"


class Deliver:
    """Pass the upstream's answer on to the client as it is (a 5xx included)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "DELIVER"


RETRY = Retry()
DELIVER = Deliver()


def pick(plan: RoutePlan[T], sticky_value: str | None, rng: Callable[[], float] = random) -> int:
    """Index of the split side a request goes to: by weight, or by a hash of the sticky value."""
    if len(plan.targets) == 1:
        return 0
    if sticky_value is not None:
        # surrogateescape: a header value aiohttp decoded from non-UTF-8 bytes hashes as its bytes.
        point = zlib.crc32(sticky_value.encode("utf-8", "surrogateescape")) % plan.total_weight
    else:
        point = int(rng() * plan.total_weight)
    for i, edge in enumerate(plan.cumulative):
        if point < edge:
            return i
    return len(plan.targets) - 1


def choose(
    plan: RoutePlan[T],
    sticky_value: str | None,
    health: HealthView[T],
    rng: Callable[[], float] = random,
) -> Forward[T] | Fail:
    """The first target of a request: the split's pick, unless its breaker is open."""
    i = pick(plan, sticky_value, rng) if len(plan.targets) > 1 else 0
    target = plan.targets[i]
    if health.admit(target):
        return plan.forwards[i]
    for j, other in enumerate(plan.targets):  # an open side of a split sends its share on
        if j != i and health.admit(other):
            return plan.forwards[j]
    fallback = plan.fallback
    if fallback is not None and health.admit(fallback):
        return Forward(fallback, target, "breaker_open")
    return Fail(BreakerOpen, target.name, health.retry_after(target))


def after_error(
    plan: RoutePlan[T],
    target: T,
    kind: str,
    *,
    request_sent: bool,
    idempotent: bool,
    replayable: bool,
    tries: int,
    fell_back: bool,
    health: HealthView[T],
) -> Retry | Forward[T] | Fail:
    """What follows an exchange that failed with `kind` (connect, timeout, reset, protocol).

    `request_sent`: some request byte reached a socket. `replayable`: the body can be sent
    again (not a stream already read). `tries`: exchanges with `target` so far.
    `fell_back`: `target` is already the fallback (there is no second one).
    """
    if (
        idempotent
        and tries <= plan.retries
        and kind in RETRIED_KINDS
        and replayable
        and health.admit(target)
    ):
        return RETRY
    fallback = plan.fallback
    if (
        fallback is not None
        and not fell_back
        and replayable
        and (kind == "connect" or not request_sent or idempotent)
        and health.admit(fallback)
    ):
        return Forward(fallback, target, kind)
    return Fail(error_after(kind), target.name)


def error_after(kind: str) -> type[GatewayError]:
    """The client's error when an exchange failed with `kind`: 504 after a timeout, else 502."""
    return GatewayTimeout if kind == "timeout" else UpstreamFailed


def after_status(
    plan: RoutePlan[T],
    target: T,
    status: int,
    *,
    idempotent: bool,
    streamed: bool,
    fell_back: bool,
    health: HealthView[T],
) -> Deliver | Forward[T]:
    """What follows an answer with `status`: below 500 it is delivered. A 5xx goes to the
    fallback only for an idempotent request whose body was not `streamed` (it can be sent
    again); otherwise it is delivered unchanged (SPEC §4.2). A 5xx is never retried."""
    if status < FAILURE_STATUS:
        return DELIVER
    fallback = plan.fallback
    if (
        fallback is not None
        and not fell_back
        and idempotent
        and not streamed
        and health.admit(fallback)
    ):
        return Forward(fallback, target, "status")
    return DELIVER
