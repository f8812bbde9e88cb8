"""Comparing copies and the invariants on each side (extracted.inventory.domain.compare), pure."""

from __future__ import annotations

from extracted.inventory.domain.compare import find_drift, findings, merge_orders
from extracted.inventory.domain.model import ItemState


def st(sku: str, on_hand: int = 10, reservations: dict[int, int] | None = None) -> ItemState:
    return ItemState(sku, "Widget", 250, on_hand, reservations or {})


def order(order_id: int, status: str, sku: str = "SKU-1", qty: int = 2) -> dict[str, object]:
    return {"id": order_id, "status": status, "items": [{"sku": sku, "qty": qty}]}


def test_drift_names_each_record_and_both_values() -> None:
    ours = {"SKU-1": st("SKU-1", 10, {1: 2}), "SKU-2": st("SKU-2")}
    theirs = {"SKU-1": st("SKU-1", 12, {1: 2, 3: 1}), "SKU-3": st("SKU-3")}
    assert [d.line() for d in find_drift(ours, theirs)] == [
        "item SKU-1 on_hand: legacy=12 inventory=10",
        "reservation SKU-1/3 qty: legacy=1 inventory=missing",
        "item SKU-2 exists: legacy=missing inventory=True",
        "item SKU-3 exists: legacy=True inventory=missing",
    ]
    assert find_drift(ours, ours) == []


def test_orders_merge_by_the_status_lattice() -> None:
    merged = merge_orders([order(1, "cancelled"), order(2, "placed")], [order(1, "placed")])
    assert [(o["id"], o["status"]) for o in merged] == [(1, "cancelled"), (2, "placed")]


def test_findings_cover_drift_and_i1_i2_on_each_side() -> None:
    legacy = {"SKU-1": st("SKU-1", 10, {1: 2})}
    ours = {"SKU-1": st("SKU-1", 1, {1: 2})}
    lines = findings(ours, legacy, [order(1, "placed")], [order(1, "cancelled")])
    assert lines == [
        "item SKU-1 on_hand: legacy=10 inventory=1",
        "inventory: SKU-1 order 1: no placed order, reservation of 2",
        "inventory: SKU-1 oversold: 2 reserved, 1 on hand",
    ]
    assert findings(legacy, legacy, [order(1, "placed")], [order(1, "placed")]) == []
