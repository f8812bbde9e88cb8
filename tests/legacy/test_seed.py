"""``seed``: deterministic demo data, inserted once (a second run changes nothing)."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from legacy_monolith.db import Customer, Item, Order, OrderLine, Reservation
from legacy_monolith.seed import generate, seed
from tests.legacy.helpers import body, db_of


def _counts(app: Flask) -> dict[str, int]:
    with db_of(app).read() as s:
        return {
            m.__tablename__: s.scalar(select(func.count()).select_from(m)) or 0
            for m in (Customer, Item, Order, OrderLine, Reservation)
        }


def test_generate_is_deterministic() -> None:
    assert generate() == generate()


def test_seed_is_idempotent_and_matches_the_spec(app: Flask, client: FlaskClient) -> None:
    first = seed(db_of(app))
    assert (first.customers, first.items, first.orders) == (50, 200, 1000)
    before = _counts(app)
    snapshot = body(client.get("/api/orders?limit=500&offset=500"))["items"]
    second = seed(db_of(app))
    assert (second.customers, second.items, second.orders, second.lines, second.reservations) == (
        0, 0, 0, 0, 0,
    )  # fmt: skip
    assert _counts(app) == before
    assert body(client.get("/api/orders?limit=500&offset=500"))["items"] == snapshot

    customers = body(client.get("/api/customers?limit=500"))
    assert customers["total"] == 50
    assert [c["id"] for c in customers["items"]] == list(range(1, 51))
    assert all(c["email"] == f"customer{c['id']}@example.com" for c in customers["items"])

    items = body(client.get("/api/inventory?limit=500"))["items"]
    assert [i["sku"] for i in items] == [f"SKU-{n:04d}" for n in range(1, 201)]
    assert all(50 <= i["on_hand"] <= 500 and 199 <= i["price_cents"] <= 99999 for i in items)
    assert all(i["available"] >= 0 for i in items)

    orders = body(client.get("/api/orders?limit=500"))["items"] + snapshot
    assert [o["id"] for o in orders] == list(range(1, 1001))
    assert all(1 <= len(o["items"]) <= 4 and 1 <= o["customer_id"] <= 50 for o in orders)
    cancelled = [o for o in orders if o["status"] == "cancelled"]
    assert 50 <= len(cancelled) <= 150
    assert orders[0]["status"] == "placed"
    assert all(o["total_cents"] == sum(ln["qty"] * ln["price_cents"] for ln in o["items"])
               for o in orders)  # fmt: skip

    # Placed orders hold exactly their lines; cancelled ones hold nothing.
    reserved: dict[str, int] = {}
    for o in orders:
        if o["status"] == "placed":
            for ln in o["items"]:
                reserved[ln["sku"]] = reserved.get(ln["sku"], 0) + ln["qty"]
    assert {i["sku"]: i["reserved"] for i in items if i["reserved"]} == reserved


def test_seed_command_twice(tmp_path) -> None:
    from tests.support import procs

    env = {"LEGACY_DATABASE_URL": f"sqlite:///{tmp_path}/var/legacy.db"}
    first = procs.run_cli(["-m", "legacy_monolith", "seed"], env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "50 customers, 200 items, 1000 orders" in first.stdout
    second = procs.run_cli(["-m", "legacy_monolith", "seed"], env=env, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "0 customers, 0 items, 0 orders, 0 order lines, 0 reservations" in second.stdout


def test_default_database_is_var_legacy_db_in_the_cwd(tmp_path) -> None:
    import os

    from tests.support import procs

    env = {k: v for k, v in os.environ.items() if k != "LEGACY_DATABASE_URL"}
    result = procs.run_cli(["-m", "legacy_monolith", "seed"], env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "var" / "legacy.db").is_file()
