"""The admin listener (SPEC §4.6) and metrics exposition (SPEC §4.7)."""

from __future__ import annotations

import shutil
import subprocess

import httpx
import pytest

from tests.gateway.conftest import routes_for
from tests.support import procs

ROUTES = """
routes:
  - name: orders
    path: /api/orders
    upstream: b
    fallback: a
  - name: canary
    path: /api/canary
    split: {b: 1, c: 3}
    sticky: X-Customer-Id
"""


@pytest.fixture
def gw(backends, start_gateway):
    return start_gateway(routes_for(backends, ROUTES))


def test_probes(gw):
    assert httpx.get(gw.admin + "/-/healthz").json() == {"status": "ok"}
    assert httpx.get(gw.admin + "/-/readyz").status_code == 200


def test_routes_document(gw):
    doc = httpx.get(gw.admin + "/-/routes").json()
    assert set(doc) >= {"hash", "loaded_at", "source", "last_error", "routes"}
    assert doc["last_error"] is None
    assert len(doc["hash"]) == 64
    by_name = {r["name"]: r for r in doc["routes"]}
    assert by_name["orders"] == {
        "name": "orders",
        "path": "/api/orders",
        "methods": None,
        "upstream": "b",
        "fallback": "a",
        "split": None,
        "shadow": None,
        "idempotency": None,
    }
    assert by_name["canary"]["split"] == {"b": 1, "c": 3}


def test_explain(gw):
    r = httpx.get(gw.admin + "/-/explain", params={"method": "GET", "path": "/api/orders/7"})
    body = r.json()
    assert body["route"] == "orders"
    assert body["upstream"] == "b"
    assert body["reason"]
    r = httpx.get(gw.admin + "/-/explain", params={"method": "GET", "path": "/nowhere"})
    assert r.json()["route"] == "default"
    r = httpx.get(gw.admin + "/-/explain", params={"path": "/../x"})
    assert r.status_code == 400


def test_breakers_and_kill_switch(gw):
    listing = httpx.get(gw.admin + "/-/breakers").json()["breakers"]
    keys = {(b["route"], b["upstream"]) for b in listing}
    assert {("orders", "b"), ("orders", "a"), ("canary", "b"), ("canary", "c")} <= keys
    assert all(b["state"] == "closed" and b["forced"] is None for b in listing)

    r = httpx.post(gw.admin + "/-/breakers/orders/open")
    assert r.status_code == 200
    assert r.json()["breakers"][0]["forced"] == "open"
    # Held open: the fallback serves, the upstream is not called.
    resp = httpx.get(gw.url + "/api/orders/1")
    assert resp.headers["X-Gateway-Upstream"] == "a"
    httpx.post(gw.admin + "/-/breakers/orders/reset")
    assert httpx.get(gw.url + "/api/orders/1").headers["X-Gateway-Upstream"] == "b"
    state = {
        (b["route"], b["upstream"]): b
        for b in httpx.get(gw.admin + "/-/breakers").json()["breakers"]
    }
    assert state[("orders", "b")]["forced"] is None and state[("orders", "b")]["state"] == "closed"
    assert httpx.post(gw.admin + "/-/breakers/nope/open").status_code == 404
    assert httpx.post(gw.admin + "/-/breakers/orders/explode").status_code in (404, 405)


def test_sticky_split_keeps_a_client_on_one_side(gw):
    seen = {
        httpx.get(gw.url + "/api/canary", headers={"X-Customer-Id": "42"}).headers[
            "X-Gateway-Upstream"
        ]
        for _ in range(20)
    }
    assert len(seen) == 1
    sides = {httpx.get(gw.url + "/api/canary").headers["X-Gateway-Upstream"] for _ in range(60)}
    assert sides == {"b", "c"}


def test_metrics_names_and_promtool(gw):
    httpx.get(gw.url + "/api/orders/1")
    httpx.get(gw.url + "/elsewhere")
    text = httpx.get(gw.admin + "/metrics").text
    assert 'gateway_requests_total{code="200",method="GET",route="orders",upstream="b"}' in text
    assert 'gateway_requests_total{code="200",method="GET",route="default",upstream="a"}' in text
    assert 'gateway_request_duration_seconds_bucket{le="0.005",route="orders",upstream="b"}' in text
    for name in (
        "gateway_breaker_state",
        "gateway_inflight_requests",
        "gateway_shadow_queue_depth",
        "gateway_config_reloads_total",
        "gateway_upstream_errors_total",
        "gateway_fallbacks_total",
        "gateway_breaker_transitions_total",
    ):
        assert f"# TYPE {name}" in text
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    check = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_non_loopback_admin_requires_token(backends, tmp_path):
    routes = tmp_path / "routes.yaml"
    routes.write_text(routes_for(backends))
    port, admin = procs.free_port(), procs.free_port()
    cmd = [
        procs.PYTHON,
        "-m",
        "gateway",
        "serve",
        "--routes",
        str(routes),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--admin-host",
        "0.0.0.0",
        "--admin-port",
        str(admin),
    ]
    r = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=30,
        env={**__import__("os").environ, "GATEWAY_ADMIN_TOKEN": ""},
    )
    assert r.returncode == 1
    assert "GATEWAY_ADMIN_TOKEN" in r.stderr
    with procs.running(
        cmd,
        log_dir=tmp_path,
        name="gw-token",
        env={"GATEWAY_ADMIN_TOKEN": "s3cret"},
        ready_url=f"http://127.0.0.1:{admin}/-/healthz",
    ):
        base = f"http://127.0.0.1:{admin}"
        assert httpx.get(base + "/-/readyz").status_code == 200
        r = httpx.get(base + "/-/routes")
        assert r.status_code == 401 and "Bearer" in r.headers["WWW-Authenticate"]
        assert (
            httpx.get(base + "/metrics", headers={"Authorization": "Bearer wrong"}).status_code
            == 401
        )
        ok = httpx.get(base + "/-/routes", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
