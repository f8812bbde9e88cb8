"""Property: whatever order, duplication or interleaving the bus delivers events in, the legacy's
copy ends where a simple reference model says (SPEC §3: never regress a record).

Reference model: an order is present iff any of its events arrived, with the lines of its
events (immutable) and status ``cancelled`` iff any cancelled event arrived; an item shows the
state of the highest version delivered.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from extracted.events import Event, inventory_changed, order_event
from legacy_monolith.consumer import apply_event
from legacy_monolith.db import Database, Item, Order, Reservation, create_schema
from legacy_monolith.shop import get_order

_run = iter(range(1, 10**9))


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    path: Path = tmp_path_factory.mktemp("merge") / "legacy.db"
    database = Database(f"sqlite:///{path}")
    create_schema(database.engine)
    yield database
    database.dispose()


def _order(order_id: int, status: str) -> dict:
    return {
        "id": order_id,
        "customer_id": 1,
        "status": status,
        "items": [{"sku": "SKU-0001", "qty": order_id % 7 + 1, "price_cents": 100}],
        "total_cents": (order_id % 7 + 1) * 100,
        "placed_at": "2026-11-30T00:00:00Z",
    }


def _item_state(sku: str, version: int) -> tuple[dict, list[dict]]:
    held = {o: (version * o) % 5 + 1 for o in range(1, version % 4 + 1)}
    reserved = sum(held.values())
    item = {
        "sku": sku,
        "name": f"v{version}",
        "price_cents": 100 + version,
        "on_hand": 50 + version,
        "reserved": reserved,
        "available": 50 + version - reserved,
    }
    return item, [{"sku": sku, "order_id": o, "qty": q} for o, q in sorted(held.items())]


order_ops = st.lists(
    st.tuples(st.integers(0, 3), st.sampled_from(["placed", "cancelled"])), max_size=12
)
item_versions = st.lists(st.integers(1, 8), max_size=12)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=order_ops, versions=item_versions, data=st.data())
def test_any_delivery_order_converges_to_the_model(
    db: Database, ops: list[tuple[int, str]], versions: list[int], data: st.DataObject
) -> None:
    run = next(_run)
    base = 1_000_000_000 + run * 10
    sku = f"SKU-P{run}"
    events: list[Event] = [order_event(_order(base + i, status), "orders") for i, status in ops]
    events += [inventory_changed(*_item_state(sku, v), "inventory", v) for v in versions]
    # at-least-once delivery: some events twice, in any order
    events += data.draw(st.lists(st.sampled_from(events), max_size=5)) if events else []
    delivered = data.draw(st.permutations(events))
    for event in delivered:
        apply_event(db, event, "inventory")

    for i in {i for i, _ in ops}:
        cancelled = any(j == i and status == "cancelled" for j, status in ops)
        expected = _order(base + i, "cancelled" if cancelled else "placed")
        assert get_order(db, base + i) == expected
    with db.read() as s:
        for i in set(range(4)) - {i for i, _ in ops}:
            assert s.get(Order, base + i) is None
        row = s.get(Item, sku)
        if not versions:
            assert row is None
            return
        top = max(versions)
        item, reservations = _item_state(sku, top)
        assert row is not None and row.version == top
        assert (row.name, row.price_cents, row.on_hand) == (
            item["name"],
            item["price_cents"],
            item["on_hand"],
        )
        held = {
            r.order_id: r.qty for r in s.scalars(select(Reservation).where(Reservation.sku == sku))
        }
        assert held == {r["order_id"]: r["qty"] for r in reservations}
    assert orjson.dumps(item)  # the model itself is valid contract JSON
