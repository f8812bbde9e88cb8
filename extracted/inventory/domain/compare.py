"""Comparing the two copies of the stock, and the invariants on each side (pure).

Every finding is one human line naming the record, so `sync --check` and `handoff --check`
can print them and compare them between rounds (a finding that keeps its exact text for the
whole settle time is drift; one that changes or goes away was a change in flight).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from extracted.invariants import conservation, oversold
from extracted.inventory.domain.model import ItemState

FIELDS = ("name", "price_cents", "on_hand")


@dataclass(frozen=True)
class Drift:
    """One record whose two copies differ (None = the record is missing on that side)."""

    record: str  # "item SKU-0001" or "reservation SKU-0001/17"
    field: str
    legacy: object
    inventory: object

    def line(self) -> str:
        """A human line: the record, the field and both values."""
        return f"{self.record} {self.field}: legacy={_show(self.legacy)} inventory={_show(self.inventory)}"


def _show(value: object) -> str:
    return "missing" if value is None else repr(value) if isinstance(value, str) else str(value)


def find_drift(ours: Mapping[str, ItemState], legacy: Mapping[str, ItemState]) -> list[Drift]:
    """Every record (items' fields, reservations' qty) that differs between the two copies."""
    drifts: list[Drift] = []
    for sku in sorted(set(ours) | set(legacy)):
        mine, theirs = ours.get(sku), legacy.get(sku)
        record = f"item {sku}"
        if mine is None or theirs is None:
            drifts.append(
                Drift(record, "exists", theirs is not None or None, mine is not None or None)
            )
            continue
        for name in FIELDS:
            a, b = getattr(theirs, name), getattr(mine, name)
            if a != b:
                drifts.append(Drift(record, name, a, b))
        for order_id in sorted(set(mine.reservations) | set(theirs.reservations)):
            qty_ours, qty_theirs = (
                mine.reservations.get(order_id),
                theirs.reservations.get(order_id),
            )
            if qty_ours != qty_theirs:
                drifts.append(Drift(f"reservation {sku}/{order_id}", "qty", qty_theirs, qty_ours))
    return drifts


def merge_orders(*sides: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The orders of several copies by id, merged by the status lattice (cancelled wins)."""
    by_id: dict[int, Mapping[str, Any]] = {}
    for orders in sides:
        for order in orders:
            known = by_id.get(int(order["id"]))
            if known is None or order.get("status") == "cancelled":
                by_id[int(order["id"])] = order
    return [by_id[k] for k in sorted(by_id)]


def invariant_findings(
    states: Mapping[str, ItemState], orders: Iterable[Mapping[str, Any]], *, side: str
) -> list[str]:
    """I2 (reservations are exactly the placed orders' lines) and I1 (no oversell) on one side."""
    reservations = {sku: s.reservations for sku, s in states.items() if s.reservations}
    on_hand = {sku: s.on_hand for sku, s in states.items()}
    return conservation(orders, reservations, side=side) + oversold(
        on_hand, reservations, side=side
    )


def findings(
    ours: Mapping[str, ItemState],
    legacy: Mapping[str, ItemState],
    legacy_orders: Iterable[Mapping[str, Any]],
    our_orders: Iterable[Mapping[str, Any]],
) -> list[str]:
    """One comparison round: drift between the copies, then the invariants on each side."""
    return (
        [d.line() for d in find_drift(ours, legacy)]
        + invariant_findings(legacy, legacy_orders, side="legacy")
        + invariant_findings(ours, our_orders, side="inventory")
    )
