"""gateway/runtime.py: what a loaded routes.yaml becomes at run time (no sockets)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from gateway.breakers import BreakerRegistry
from gateway.config import load_config
from gateway.runtime import PoolSet, build_snapshot

ROUTES = """
version: 1
upstreams:
  legacy: {url: "http://127.0.0.1:8000"}
  orders: {url: "http://127.0.0.1:8101"}
defaults:
  upstream: legacy
routes:
  - name: orders
    path: /api/orders
    upstream: orders
    fallback: legacy
    retries: {attempts: 2}
  - name: canary
    path: /api/orders/{id}
    methods: [GET]
    split: {orders: 10, legacy: 90}
    sticky: X-Customer-Id
"""


def _snapshot(tmp_path: Path, text: str = ROUTES, pools: PoolSet | None = None):
    path = tmp_path / "routes.yaml"
    path.write_text(textwrap.dedent(text))
    return build_snapshot(load_config(path), pools or PoolSet(), BreakerRegistry())


def test_each_route_gets_a_policy_plan(tmp_path: Path) -> None:
    snap = _snapshot(tmp_path)
    orders = snap.runtimes["orders"].plan
    assert [t.name for t in orders.targets] == ["orders"]
    assert orders.fallback is not None and orders.fallback.name == "legacy"
    assert orders.retries == 2
    canary = snap.runtimes["canary"]
    assert [t.name for t in canary.plan.targets] == ["orders", "legacy"]
    assert canary.plan.cumulative == (10, 100) and canary.plan.total_weight == 100
    assert canary.plan.fallback is None
    assert canary.sticky == "x-customer-id"
    default = snap.runtimes["default"].plan
    assert [t.name for t in default.targets] == ["legacy"] and default.retries == 0


def test_targets_share_pools_and_breakers_per_upstream(tmp_path: Path) -> None:
    snap = _snapshot(tmp_path)
    orders, canary = snap.runtimes["orders"], snap.runtimes["canary"]
    assert orders.targets[0].pool is canary.targets[0].pool  # one pool per upstream
    assert orders.targets[0].breaker is not canary.targets[0].breaker  # one breaker per route
    assert orders.fallback is not None
    assert orders.fallback.breaker.route == "orders"


def test_gateway_response_lines_are_encoded_once(tmp_path: Path) -> None:
    target = _snapshot(tmp_path).runtimes["orders"].targets[0]
    assert target.response_lines == b"X-Gateway-Route: orders\r\nX-Gateway-Upstream: orders\r\n"


def test_a_reload_keeps_unchanged_pools_and_replaces_changed_ones(tmp_path: Path) -> None:
    pools = PoolSet()
    first = _snapshot(tmp_path, pools=pools)
    second = _snapshot(tmp_path, ROUTES.replace("8101", "8102"), pools=pools)
    legacy = lambda snap: snap.runtimes["default"].targets[0].pool  # noqa: E731
    orders = lambda snap: snap.runtimes["orders"].targets[0].pool  # noqa: E731
    assert legacy(first) is legacy(second)
    assert orders(first) is not orders(second)
