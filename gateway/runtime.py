"""What one loaded routes.yaml becomes at run time: the compiled table plus, per route, its upstream
targets (pooled connections, breakers, pre-bound metric children). Built off the hot path on each (re)load
and swapped in whole (STYLE.md principle 3)."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gateway import http1, metrics
from gateway.breakers import Breaker, BreakerRegistry, BreakerSettings
from gateway.config import Config
from gateway.idempotency.core import claim_hold
from gateway.idempotency.stage import RouteIdempotency
from gateway.policy import RoutePlan
from gateway.table import CompiledRoute, RouteTable
from gateway.upstream import UpstreamPool

# SPEC §4.7's kinds; a garbage answer ("protocol" in gateway.upstream) counts as a reset connection.
ERROR_KINDS = ("connect", "timeout", "reset", "status")


class Target:
    """One upstream as used by one route: its pool, breaker and metric children."""

    __slots__ = ("name", "pool", "breaker", "duration", "errors", "route", "response_lines")

    def __init__(self, route: str, name: str, pool: UpstreamPool, breaker: Breaker) -> None:
        self.route = route
        self.name = name
        self.pool = pool
        self.breaker = breaker
        self.duration = metrics.REQUEST_DURATION.labels(route, name)
        self.errors = {k: metrics.UPSTREAM_ERRORS.labels(route, name, k) for k in ERROR_KINDS}
        self.errors["protocol"] = self.errors["reset"]
        # The X-Gateway-Route / X-Gateway-Upstream lines of every response, encoded once instead of
        # per response (config validation keeps both names to [a-z0-9_-]).
        self.response_lines = http1.header_lines(
            (("X-Gateway-Route", route), ("X-Gateway-Upstream", name))
        )


class RouteRuntime:
    """Run-time companion of a CompiledRoute; `plan` is what the policy core decides on."""

    __slots__ = (
        "route",
        "name",
        "targets",
        "plan",
        "sticky",
        "fallback",
        "timeout",
        "retries",
        "shadow",
        "shadow_pool",
        "shadow_timeout",
        "idempotency",
        "_requests",
        "_fallbacks",
    )

    def __init__(
        self,
        route: CompiledRoute,
        targets: list[Target],
        weights: list[int],
        fallback: Target | None,
        shadow_pool: UpstreamPool | None = None,
    ) -> None:
        self.route = route
        self.name = route.name
        self.targets = targets
        self.plan = RoutePlan(targets, weights, fallback, route.retries)
        self.sticky = route.sticky.lower() if route.sticky else None
        self.fallback = fallback
        self.timeout = float(route.timeout)
        self.retries = route.retries
        # Shadow: the mirrored copy goes to `shadow_pool` with its own timeout (SPEC §4.4).
        self.shadow = route.shadow if shadow_pool is not None else None
        self.shadow_pool = shadow_pool
        self.shadow_timeout = float(
            route.shadow.timeout if route.shadow and route.shadow.timeout else route.timeout
        )
        # Idempotency: None for every route without the block, so other requests never look further.
        self.idempotency = (
            RouteIdempotency(
                route.name,
                route.idempotency,
                claim_hold(self.timeout, self.retries, fallback is not None),
            )
            if route.idempotency is not None
            else None
        )
        self._requests: dict[tuple[str, str, int], Any] = {}
        self._fallbacks: dict[tuple[str, str, str], Any] = {}

    def count(self, upstream: str, method: str, status: int) -> None:
        """gateway_requests_total, with the child cached per (upstream, method, code)."""
        key = (upstream, method, status)
        child = self._requests.get(key)
        if child is None:
            child = metrics.REQUESTS.labels(self.name, upstream, method, str(status))
            if len(self._requests) < 4096:  # bounded: methods are client-chosen strings
                self._requests[key] = child
        child.inc()

    def count_fallback(self, from_upstream: str, to_upstream: str, reason: str) -> None:
        key = (from_upstream, to_upstream, reason)
        child = self._fallbacks.get(key)
        if child is None:
            child = self._fallbacks[key] = metrics.FALLBACKS.labels(
                self.name, from_upstream, to_upstream, reason
            )
        child.inc()


class PoolSet:
    """Upstream connection pools keyed by name and settings, reused across reloads."""

    def __init__(self) -> None:
        self._pools: dict[str, tuple[tuple[Any, ...], UpstreamPool]] = {}
        self.retired: list[UpstreamPool] = []

    def sync(self, config: Config) -> dict[str, UpstreamPool]:
        """Pools for every upstream of `config`; changed or removed upstreams' pools are retired."""
        out: dict[str, UpstreamPool] = {}
        for name, up in config.upstreams.items():
            key = (str(up.url), float(up.connect_timeout), int(up.max_connections))
            have = self._pools.get(name)
            if have is not None and have[0] == key:
                out[name] = have[1]
                continue
            if have is not None:
                self.retired.append(have[1])
            pool = UpstreamPool(str(up.url), max_connections=key[2], connect_timeout=key[1])
            self._pools[name] = (key, pool)
            out[name] = pool
        for name in list(self._pools):
            if name not in config.upstreams:
                self.retired.append(self._pools.pop(name)[1])
        return out

    async def close_retired(self) -> None:
        retired, self.retired = self.retired, []
        for pool in retired:
            await pool.close()

    async def close(self) -> None:
        self.retired.extend(p for _, p in self._pools.values())
        self._pools.clear()
        await self.close_retired()


@dataclass
class Snapshot:
    """One loaded configuration, ready to serve."""

    config: Config
    table: RouteTable
    runtimes: dict[str, RouteRuntime]
    trusted: tuple[Any, ...]
    loaded_at: float = field(default_factory=time.time)

    def is_trusted(self, peer: str | None) -> bool:
        if not self.trusted or not peer:
            return False
        try:
            addr = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(addr in net for net in self.trusted)


def _breaker_settings(route: CompiledRoute) -> BreakerSettings:
    b = route.breaker
    return BreakerSettings(failures=int(b.failures), reset_after=float(b.reset_after))


def build_snapshot(
    config: Config, pools: PoolSet, breakers: BreakerRegistry, table: RouteTable | None = None
) -> Snapshot:
    """Compile `config` (unless `table` is given) and wire each route to its pools, breakers, metrics."""
    if table is None:
        table = RouteTable.compile(config)
    by_name = pools.sync(config)
    runtimes: dict[str, RouteRuntime] = {}
    keys: list[tuple[str, str]] = []
    routes: Iterable[CompiledRoute] = [*table.routes, table.default]
    for route in routes:
        settings = _breaker_settings(route)
        if route.split:
            names = [u for u, _ in route.split]
            weights = [int(w) for _, w in route.split]
        else:
            assert route.upstream is not None  # config validation: exactly one of upstream / split
            names = [route.upstream]
            weights = [1]
        targets = []
        for n in names:
            targets.append(Target(route.name, n, by_name[n], breakers.get(route.name, n, settings)))
            keys.append((route.name, n))
        fallback = None
        if route.fallback:
            fb = route.fallback
            fallback = Target(route.name, fb, by_name[fb], breakers.get(route.name, fb, settings))
            keys.append((route.name, fb))
        shadow_pool = by_name[route.shadow.upstream] if route.shadow is not None else None
        runtimes[route.name] = RouteRuntime(route, targets, weights, fallback, shadow_pool)
    breakers.retain(keys)
    trusted = tuple(
        ipaddress.ip_network(str(n), strict=False) for n in (config.trusted_proxies or ())
    )
    return Snapshot(config=config, table=table, runtimes=runtimes, trusted=trusted)
