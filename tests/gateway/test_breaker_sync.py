"""Breaker state shared by two gateway processes through the real Redis (SPEC §4.3, issue: shared state)."""

from __future__ import annotations

import time

import httpx

from tests.gateway.conftest import routes_for
from tests.support import procs

ROUTES = """
routes:
  - name: orders
    path: /api/orders
    upstream: dead
    fallback: b
    breaker: {failures: 2, reset_after: 60s}
  - name: other
    path: /api/other
    upstream: b
"""


def _state(gw, route: str, upstream: str) -> dict:
    for b in httpx.get(gw.admin + "/-/breakers", timeout=5).json()["breakers"]:
        if (b["route"], b["upstream"]) == (route, upstream):
            return b
    raise AssertionError((route, upstream))


def _eventually(check, timeout: float = 1.0) -> float:
    t0 = time.monotonic()
    while True:
        if check():
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"condition not met within {timeout:.1f}s")
        time.sleep(0.02)


def test_two_replicas_agree_through_redis(backends, start_gateway, redis_url, redis_prefix):
    env = {"REDIS_URL": redis_url, "GATEWAY_REDIS_PREFIX": redis_prefix}
    text = routes_for(backends, ROUTES)
    one = start_gateway(text, env=env, name="gw1")
    two = start_gateway(text, env=env, name="gw2")

    # A breaker opened by failures in replica one is open in replica two within a second.
    for _ in range(2):
        assert httpx.get(one.url + "/api/orders/1").status_code == 200  # served by the fallback
    assert _state(one, "orders", "dead")["state"] == "open"
    _eventually(lambda: _state(two, "orders", "dead")["state"] == "open")
    r = httpx.get(two.url + "/api/orders/1")
    assert r.headers["X-Gateway-Upstream"] == "b"
    text2 = httpx.get(two.admin + "/metrics").text
    assert 'reason="breaker_open"' in text2  # replica two never tried the dead upstream itself
    assert (
        'gateway_upstream_errors_total{kind="connect",route="orders",upstream="dead"} 0.0' in text2
    )

    # The admin kill switch holds across replicas, and so does reset.
    httpx.post(one.admin + "/-/breakers/other/open")
    _eventually(lambda: _state(two, "other", "b")["forced"] == "open")
    assert httpx.get(two.url + "/api/other").status_code == 503
    httpx.post(two.admin + "/-/breakers/other/reset")
    _eventually(lambda: _state(one, "other", "b")["forced"] is None)
    assert httpx.get(one.url + "/api/other").status_code == 200
    httpx.post(one.admin + "/-/breakers/orders/reset")
    _eventually(lambda: _state(two, "orders", "dead")["state"] == "closed")


def test_late_replica_picks_up_state(backends, start_gateway, redis_url, redis_prefix):
    env = {"REDIS_URL": redis_url, "GATEWAY_REDIS_PREFIX": redis_prefix}
    text = routes_for(backends, ROUTES)
    one = start_gateway(text, env=env, name="gw1")
    httpx.post(one.admin + "/-/breakers/other/open")
    time.sleep(0.2)
    two = start_gateway(text, env=env, name="gw2")
    _eventually(lambda: _state(two, "other", "b")["forced"] == "open", timeout=2.0)


def test_redis_down_degrades_to_local_state(backends, start_gateway):
    dead = f"redis://127.0.0.1:{procs.free_port()}/0"
    gw = start_gateway(routes_for(backends, ROUTES), env={"REDIS_URL": dead})
    for _ in range(5):
        assert httpx.get(gw.url + "/api/other").status_code == 200
        assert httpx.get(gw.url + "/api/orders/1").status_code == 200
    assert _state(gw, "orders", "dead")["state"] == "open"
    time.sleep(0.5)
    assert "unreachable" in gw.proc.log()
