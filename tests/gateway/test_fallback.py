"""Breakers, fallback and split against real processes (SPEC §4.3)."""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import pytest

from tests.gateway.conftest import Backend, routes_for
from tests.support import procs


def _start_on(port: int, name: str, log_dir) -> procs.Proc:
    return procs.start(
        [procs.PYTHON, "-m", "tests.support.backend", "--port", str(port), "--name", name],
        log_dir=log_dir,
        name=f"{name}-{time.monotonic_ns()}",
        ready_port=port,
    )


def _breaker(gw, route: str, upstream: str) -> dict:
    for b in httpx.get(gw.admin + "/-/breakers", timeout=5).json()["breakers"]:
        if b["route"] == route and b["upstream"] == upstream:
            return b
    raise AssertionError(f"no breaker {route}/{upstream}")


def _wait_state(gw, route: str, upstream: str, state: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = _breaker(gw, route, upstream)["state"]
        if got == state:
            return
        time.sleep(0.05)
    raise AssertionError(f"breaker {route}/{upstream} is {got}, wanted {state}")


def test_killed_upstream_falls_back_without_5xx_then_recovers(backends, start_gateway, tmp_path):
    port = procs.free_port()
    svc = _start_on(port, "orders", tmp_path)
    routes = routes_for(
        backends,
        """
routes:
  - name: orders
    path: /api/orders
    upstream: orders
    fallback: b
    timeout: 2s
    breaker: {failures: 3, reset_after: 1s}
""",
    ).replace(
        "upstreams:\n",
        f'upstreams:\n  orders: {{url: "http://127.0.0.1:{port}", connect_timeout: 500ms}}\n',
    )
    gw = start_gateway(routes)
    served: dict[str, int] = {}
    statuses: list[int] = []
    try:
        with httpx.Client(base_url=gw.url, timeout=10) as c:

            def burst(n: int) -> None:
                for i in range(n):
                    r = c.get(f"/api/orders/{i}")
                    statuses.append(r.status_code)
                    up = r.headers.get("X-Gateway-Upstream", "?")
                    served[up] = served.get(up, 0) + 1

            burst(20)
            assert served == {"orders": 20}
            svc.kill()  # the new service dies under traffic
            burst(40)
            assert all(s == 200 for s in statuses), statuses
            assert served["b"] >= 40
            assert _breaker(gw, "orders", "orders")["state"] in ("open", "half-open")
            text = httpx.get(gw.admin + "/metrics").text
            assert (
                'gateway_fallbacks_total{from_upstream="orders",reason="breaker_open",route="orders",to_upstream="b"}'
                in text
            )
            assert (
                'gateway_upstream_errors_total{kind="connect",route="orders",upstream="orders"}'
                in text
            )
            assert (
                'gateway_breaker_transitions_total{route="orders",to="open",upstream="orders"}'
                in text
            )

            svc = _start_on(port, "orders", tmp_path)  # it comes back
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                r = c.get("/api/orders/again")
                assert r.status_code == 200
                if r.headers["X-Gateway-Upstream"] == "orders":
                    break
                time.sleep(0.1)
            assert _breaker(gw, "orders", "orders")["state"] == "closed"
    finally:
        svc.stop()


ROUTES = """
routes:
  - name: slow-fb
    path: /slow
    upstream: b
    fallback: c
    timeout: 200ms
    breaker: {failures: 2, reset_after: 30s}
  - name: err-fb
    path: /status
    upstream: b
    fallback: c
    breaker: {failures: 100, reset_after: 30s}
  - name: no-fb
    path: /nofb
    upstream: dead
    breaker: {failures: 2, reset_after: 30s}
  - name: trial
    path: /trial
    rewrite: /slow
    upstream: b
    timeout: 5s
    breaker: {failures: 1, reset_after: 500ms}
  - name: canary
    path: /canary
    split: {dead: 50, c: 50}
    breaker: {failures: 2, reset_after: 30s}
"""


@pytest.fixture
def gw(backends, start_gateway):
    return start_gateway(routes_for(backends, ROUTES))


def test_slow_upstream_times_out_to_fallback_then_fails_fast(gw):
    with httpx.Client(base_url=gw.url, timeout=10) as c:
        for _ in range(2):
            r = c.get("/slow?ms=2000&only=b")
            assert r.status_code == 200 and r.headers["X-Gateway-Upstream"] == "c"
        assert _breaker(gw, "slow-fb", "b")["state"] == "open"
        t0 = time.monotonic()
        r = c.get("/slow?ms=2000&only=b")
        # open: straight to the fallback, without waiting for the upstream's timeout
        assert r.headers["X-Gateway-Upstream"] == "c"
        assert time.monotonic() - t0 < 0.2
        r = c.post("/slow?ms=2000&only=b")
        assert r.headers["X-Gateway-Upstream"] == "c"  # breaker is open: fallback for every method
    httpx.post(gw.admin + "/-/breakers/slow-fb/reset")
    # A non-idempotent request that times out is not replayed on the fallback: 504.
    r = httpx.post(gw.url + "/slow?ms=2000&only=b", timeout=10)
    assert r.status_code == 504 and r.headers["X-Gateway-Upstream"] == "b"


def test_5xx_falls_back_for_idempotent_only(gw):
    with httpx.Client(base_url=gw.url, timeout=10) as c:
        r = c.get("/status/500")
        assert r.headers["X-Gateway-Upstream"] == "c"
        r = c.post("/status/500")
        assert r.status_code == 500 and r.headers["X-Gateway-Upstream"] == "b"
        assert r.json() == {"backend": "b", "status": 500}


def test_open_breaker_without_fallback_is_503_with_retry_after(gw):
    with httpx.Client(base_url=gw.url, timeout=10) as c:
        assert c.get("/nofb").status_code == 502
        assert c.get("/nofb").status_code == 502
        r = c.get("/nofb")
        assert r.status_code == 503
        assert int(r.headers["Retry-After"]) >= 1
        body = r.json()
        assert body["error"] == "breaker_open" and body["route"] == "no-fb"


def test_half_open_sends_exactly_one_trial(gw, backends):
    b: Backend = backends["b"]
    # One upstream 5xx opens it (failures: 1): the backend answers 500 to a non-integer `ms`.
    r = httpx.get(gw.url + "/trial", params={"ms": "x"}, timeout=10)
    assert r.status_code == 500
    _wait_state(gw, "trial", "b", "open")
    time.sleep(0.6)  # reset_after elapses: the next request is the single half-open trial
    key = f"trial-{time.monotonic_ns()}"

    def one(_: int) -> int:
        return httpx.get(
            gw.url + "/trial", params={"ms": "400", "key": key}, timeout=10
        ).status_code

    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        codes = list(pool.map(one, range(5)))
    assert b.hits(key) == 1, codes
    assert codes.count(200) == 1 and codes.count(503) == 4
    assert _breaker(gw, "trial", "b")["state"] == "closed"


def test_open_canary_side_sends_its_share_to_the_other(gw):
    with httpx.Client(base_url=gw.url, timeout=10) as c:
        codes = [c.get("/canary").status_code for _ in range(30)]
        # The dead side fails (502) until its breaker opens after 2 failures; then c takes everything.
        assert codes.count(502) <= 2
        tail = [c.get("/canary") for _ in range(20)]
        assert all(r.status_code == 200 and r.headers["X-Gateway-Upstream"] == "c" for r in tail)
