"""`make run`'s stack end to end: gateway in front of legacy, orders and inventory (issues: stack, gateway, services)."""

from __future__ import annotations

import signal

import httpx

from tests.e2e.conftest import wait_for


def _json(r: httpx.Response) -> dict:
    body = r.json()
    body.pop("generated_at", None)
    return body


def test_gateway_routes_legacy_and_migrated_paths(stack):
    gw = stack.url("gateway")
    r = httpx.get(gw + "/api/customers/1")
    assert r.status_code == 200
    assert r.headers["X-Gateway-Route"] == "default"
    assert r.headers["X-Gateway-Upstream"] == "legacy"
    assert r.json()["id"] == 1

    home = httpx.get(gw + "/")
    assert home.status_code == 200 and "text/html" in home.headers["Content-Type"]
    assert home.headers["X-Gateway-Route"] == "home"

    # Orders are migrated: served by the orders service once its sync has copied the legacy's data.
    r = wait_for(
        lambda: (x := httpx.get(gw + "/api/orders/1")).status_code == 200 and x,
        60,
        "order 1 through the gateway",
    )
    assert r.headers["X-Gateway-Upstream"] == "orders"
    legacy = httpx.get(stack.url("legacy") + "/api/orders/1")
    assert r.content == legacy.content  # byte-for-byte the same answer from both implementations


def test_same_json_from_legacy_and_new_services(stack):
    wait_for(
        lambda: httpx.get(stack.url("inventory") + "/api/inventory/SKU-0200").status_code == 200,
        60,
        "inventory sync",
    )
    for path, new in (
        ("/api/inventory?limit=20", "inventory"),
        ("/api/inventory/SKU-0007", "inventory"),
        ("/api/orders?limit=20&offset=5", "orders"),
        ("/api/orders/17", "orders"),
    ):
        old = httpx.get(stack.url("legacy") + path)
        cur = wait_for(
            lambda p=path, n=new: (x := httpx.get(stack.url(n) + p)).status_code == 200 and x,
            30,
            path,
        )
        assert _json(cur) == _json(old), path


def test_order_placed_on_new_service_appears_on_legacy(stack):
    gw = stack.url("gateway")
    wait_for(
        lambda: httpx.get(gw + "/api/orders/1").headers.get("X-Gateway-Upstream") == "orders",
        60,
        "orders serving",
    )
    before = httpx.get(stack.url("legacy") + "/api/inventory/SKU-0042").json()
    r = httpx.post(
        gw + "/api/orders", json={"customer_id": 3, "items": [{"sku": "SKU-0042", "qty": 2}]}
    )
    assert r.status_code == 201, r.text
    assert r.headers["X-Gateway-Upstream"] == "orders"
    order = r.json()
    assert order["id"] >= 1_000_000_000
    on_legacy = wait_for(
        lambda: (
            (x := httpx.get(stack.url("legacy") + f"/api/orders/{order['id']}")).status_code == 200
            and x
        ),
        20,
        "the new order on the legacy",
    )
    assert on_legacy.json() == order
    wait_for(
        lambda: (
            httpx.get(stack.url("legacy") + "/api/inventory/SKU-0042").json()["reserved"]
            == before["reserved"] + 2
        ),
        20,
        "the reservation on the legacy",
    )
    page = httpx.get(gw + "/customers/3")
    assert str(order["id"]) in page.text


def test_shadowed_inventory_reads_are_compared(stack):
    gw = stack.url("gateway")
    wait_for(
        lambda: httpx.get(stack.url("inventory") + "/api/inventory/SKU-0200").status_code == 200,
        60,
        "inventory sync",
    )
    for i in range(10):
        r = httpx.get(gw + f"/api/inventory?limit=5&offset={150 + i}")
        assert r.status_code == 200 and r.headers["X-Gateway-Upstream"] == "legacy"
    report = wait_for(
        lambda: next(
            (
                x
                for x in httpx.get(stack.url("admin") + "/-/shadow").json()["routes"]
                if x["route"] == "inventory-reads" and x["samples"] >= 10
            ),
            None,
        ),
        20,
        "shadow samples",
    )
    # Synced copies of untouched items agree once generated_at is ignored.
    assert report["matches"] + report["noise"] >= 8, report
    ui = httpx.get(stack.url("admin") + "/-/shadow/ui")
    assert ui.status_code == 200


def test_admin_reports_the_shipped_routes(stack):
    doc = httpx.get(stack.url("admin") + "/-/routes").json()
    assert {r["name"] for r in doc["routes"]} >= {"orders", "inventory-reads", "inventory-writes"}
    assert doc["last_error"] is None


def test_ctrl_c_stops_everything(stack):
    # Runs last in this module (file order): a person's Ctrl-C ends every process of the stack.
    stack.proc.signal(signal.SIGINT)
    stack.proc.popen.wait(30)  # raises if honcho is still running
    for name in ("gateway", "legacy", "orders", "inventory"):
        try:
            httpx.get(stack.url(name) + "/", timeout=1)
            raise AssertionError(f"{name} still answers after Ctrl-C")
        except httpx.ConnectError:
            pass
