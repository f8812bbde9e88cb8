"""Shadow traffic through a real gateway process (SPEC §4.4): mirrored copies, comparison, reports."""

from __future__ import annotations

import json
import time

import httpx

from tests.gateway.conftest import routes_for
from tests.support import procs

ROUTES = """
shadow_store: "sqlite:///var/shadow.db"
routes:
  - name: mirrored
    path: /api/m
    rewrite: /status/200
    upstream: b
    shadow: {upstream: c, sample: 1.0}
  - name: mirrored-ignoring
    path: /api/ok
    rewrite: /status/200
    upstream: b
    shadow: {upstream: c, ignore: ["backend"]}
  - name: noisy
    path: /api/noisy
    rewrite: /random
    upstream: b
    shadow: {upstream: c, ignore: ["backend"], noise: auto}
"""


def _report(gw) -> dict:
    return {r["route"]: r for r in httpx.get(gw.admin + "/-/shadow", timeout=5).json()["routes"]}


def _until(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError("condition not met")
        time.sleep(0.1)


def test_mirrored_requests_are_compared_and_reported(backends, start_gateway, tmp_path):
    gw = start_gateway(routes_for(backends, ROUTES))
    with httpx.Client(base_url=gw.url, timeout=10) as c:
        for _ in range(30):
            r = c.get(
                "/api/m", headers={"Authorization": "Bearer sekret", "Cookie": "sid=topsecret"}
            )
            assert (
                r.status_code == 200 and r.json()["backend"] == "b"
            )  # the client sees the primary
            assert c.get("/api/ok").status_code == 200
            assert c.get("/api/noisy").status_code == 200
        assert c.post("/api/m").status_code == 200  # POST is not mirrored by default
    report = _until(
        lambda: (
            (rep := _report(gw))
            and rep.get("mirrored", {}).get("samples", 0) >= 30
            and rep.get("noisy", {}).get("samples", 0) >= 30
            and rep
        )
    )
    m = report["mirrored"]
    assert m["mismatches"] == 30 and m["matches"] == 0
    assert m["verdict"] == "insufficient-data"
    assert any(f["path"] == "backend" for f in m["fields"])
    example = m["examples"][0]
    assert example["method"] == "GET" and example["status"] == {"primary": 200, "shadow": 200}
    assert {"path": "backend", "primary": "b", "shadow": "c"} in [
        {k: d[k] for k in ("path", "primary", "shadow")} for d in example["diffs"]
    ]
    assert report["mirrored-ignoring"]["matches"] >= 30
    assert report["mirrored-ignoring"]["match_rate"] == 1.0
    noisy = report["noisy"]
    assert noisy["noise"] >= 25 and noisy["mismatches"] <= 5, noisy
    assert any(f["path"] == "nonce" and f["noise"] for f in noisy["fields"])
    metrics = httpx.get(gw.admin + "/metrics").text
    assert 'gateway_shadow_total{outcome="mismatch",route="mirrored"}' in metrics
    assert 'gateway_shadow_total{outcome="match",route="mirrored-ignoring"}' in metrics
    assert "gateway_shadow_queue_depth" in metrics
    ui = httpx.get(gw.admin + "/-/shadow/ui")
    assert ui.status_code == 200 and "text/html" in ui.headers["Content-Type"]

    # The store is on disk next to routes.yaml: the CLI reads the same numbers, and secrets never land there.
    gw.proc.stop()
    store = gw.routes.parent / "var" / "shadow.db"
    assert store.exists()
    raw = store.read_bytes()
    assert b"sekret" not in raw and b"topsecret" not in raw
    out = procs.run_cli(
        ["-m", "gateway", "shadow-report", "--routes", str(gw.routes), "--format", "json"]
    )
    assert out.returncode == 0, out.stderr
    routes = {r["route"]: r for r in json.loads(out.stdout)["routes"]}
    assert routes["mirrored"]["samples"] >= 30
    check = procs.run_cli(
        [
            "-m",
            "gateway",
            "shadow-report",
            "--routes",
            str(gw.routes),
            "--check",
            "--min-samples",
            "10",
            "--route",
            "mirrored-ignoring",
        ]
    )
    assert check.returncode == 0, check.stdout + check.stderr
    check = procs.run_cli(
        [
            "-m",
            "gateway",
            "shadow-report",
            "--routes",
            str(gw.routes),
            "--check",
            "--min-samples",
            "10",
        ]
    )
    assert check.returncode == 1  # `mirrored` is not-ready


def test_dead_shadow_never_affects_the_client(backends, start_gateway):
    gw = start_gateway(
        routes_for(
            backends,
            """
routes:
  - name: to-dead
    path: /api/d
    upstream: b
    shadow: {upstream: dead}
""",
        )
    )
    with httpx.Client(base_url=gw.url, timeout=10) as c:
        for _ in range(20):
            assert c.get("/api/d").status_code == 200
    rep = _until(lambda: (r := _report(gw)) and r.get("to-dead", {}).get("errors", 0) >= 20 and r)
    assert rep["to-dead"]["verdict"] in ("insufficient-data", "not-ready")
