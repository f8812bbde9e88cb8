"""Kill the real orders service under a stream of requests: the breaker opens, the legacy answers every
request (no 5xx for idempotent ones), orders comes back and the half-open trial closes the breaker."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from tests.e2e.conftest import wait_for
from tests.support import procs


def _serve(cmd: list[str], workdir: Path, name: str, env: dict[str, str], port: int) -> procs.Proc:
    return procs.start(
        cmd,
        log_dir=workdir,
        name=f"{name}-{time.monotonic_ns()}",
        env=env,
        ready_url=f"http://127.0.0.1:{port}/healthz",
        timeout=60,
    )


def test_orders_killed_under_load_falls_back_to_legacy_then_recovers(tmp_path):
    ports = {n: procs.free_port() for n in ("legacy", "inventory", "orders", "gateway", "admin")}
    url = {n: f"http://127.0.0.1:{p}" for n, p in ports.items()}
    common = {
        "EVENTS_DB": str(tmp_path / "events.db"),
        "REDIS_URL": "",
        "LEGACY_URL": url["legacy"],
        "INVENTORY_URL": url["inventory"],
        "STOCK_AUTHORITY": "inventory",  # as the demo stack runs
    }
    legacy_env = {**common, "LEGACY_DATABASE_URL": f"sqlite:///{tmp_path}/legacy.db"}
    inv_env = {**common, "INVENTORY_DATABASE_URL": f"sqlite:///{tmp_path}/inventory.db"}
    orders_env = {**common, "ORDERS_DATABASE_URL": f"sqlite:///{tmp_path}/orders.db"}
    assert (
        procs.run_cli(["-m", "legacy_monolith", "seed"], env=legacy_env, timeout=300).returncode
        == 0
    )
    started: list[procs.Proc] = []
    try:
        started.append(
            _serve(
                [procs.PYTHON, "-m", "legacy_monolith", "serve", "--port", str(ports["legacy"])],
                tmp_path,
                "legacy",
                legacy_env,
                ports["legacy"],
            )
        )
        for svc, env in (("inventory", inv_env), ("orders", orders_env)):
            assert (
                procs.run_cli(["-m", f"extracted.{svc}", "sync"], env=env, timeout=300).returncode
                == 0
            )
        started.append(
            _serve(
                [
                    procs.PYTHON,
                    "-m",
                    "extracted.inventory",
                    "serve",
                    "--port",
                    str(ports["inventory"]),
                ],
                tmp_path,
                "inventory",
                inv_env,
                ports["inventory"],
            )
        )
        orders_cmd = [
            procs.PYTHON,
            "-m",
            "extracted.orders",
            "serve",
            "--port",
            str(ports["orders"]),
        ]
        orders = _serve(orders_cmd, tmp_path, "orders", orders_env, ports["orders"])
        started.append(orders)
        routes = tmp_path / "routes.yaml"
        routes.write_text(f"""
version: 1
upstreams:
  legacy: {{url: "{url["legacy"]}"}}
  orders: {{url: "{url["orders"]}", connect_timeout: 500ms}}
defaults: {{upstream: legacy, timeout: 5s}}
routes:
  - name: orders
    path: /api/orders
    upstream: orders
    fallback: legacy
    timeout: 2s
    breaker: {{failures: 3, reset_after: 1s}}
""")
        started.append(
            procs.start(
                [
                    procs.PYTHON,
                    "-m",
                    "gateway",
                    "serve",
                    "--routes",
                    str(routes),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(ports["gateway"]),
                    "--admin-port",
                    str(ports["admin"]),
                ],
                log_dir=tmp_path,
                name="gateway",
                ready_url=url["admin"] + "/-/readyz",
            )
        )

        stop = threading.Event()
        seen: list[tuple[int, str]] = []

        def load() -> None:
            with httpx.Client(base_url=url["gateway"], timeout=10) as c:
                i = 0
                while not stop.is_set():
                    i += 1
                    r = c.get(f"/api/orders/{1 + i % 50}")
                    seen.append((r.status_code, r.headers.get("X-Gateway-Upstream", "?")))

        threads = [threading.Thread(target=load) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: sum(1 for _, u in seen if u == "orders") > 30, 20, "orders serving")
            orders.kill()  # SIGKILL the new service mid-stream
            wait_for(
                lambda: sum(1 for _, u in seen[-20:] if u == "legacy") == 20,
                20,
                "the legacy answering everything",
            )

            def breaker_state() -> str:
                doc = httpx.get(url["admin"] + "/-/breakers").json()["breakers"]
                return next(
                    b["state"] for b in doc if (b["route"], b["upstream"]) == ("orders", "orders")
                )

            assert breaker_state() in ("open", "half-open")
            orders = _serve(orders_cmd, tmp_path, "orders", orders_env, ports["orders"])
            started.append(orders)
            mark = len(seen)
            wait_for(
                lambda: sum(1 for _, u in seen[mark:] if u == "orders") > 20,
                20,
                "orders serving again after the half-open trial",
            )
            assert breaker_state() == "closed"
        finally:
            stop.set()
            for t in threads:
                t.join(15)
        bad = [s for s in seen if s[0] >= 500]
        assert not bad, bad[:10]
        assert len(seen) > 200
        metrics = httpx.get(url["admin"] + "/metrics").text
        assert (
            'gateway_breaker_transitions_total{route="orders",to="open",upstream="orders"}'
            in metrics
        )
        assert 'reason="breaker_open",route="orders",to_upstream="legacy"' in metrics
    finally:
        for p in reversed(started):
            p.stop()
