"""SPEC §3 invariants as pure checks over plain data, shared by `sync --check`, tests and bench.

Inputs are contract-shaped: orders as the HTTP API renders them, and each sku's reservations as
``{order_id: qty}``. Every finding is one human-readable line naming the record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["conservation", "expected_reservations", "oversold"]

Reservations = Mapping[str, Mapping[int, int]]


def expected_reservations(orders: Iterable[Mapping[str, Any]]) -> dict[str, dict[int, int]]:
    """I2: what each sku's reservations must be: ``{order_id: qty}`` of every placed order."""
    wanted: dict[str, dict[int, int]] = {}
    for order in orders:
        if order.get("status") != "placed":
            continue
        for line in order["items"]:
            wanted.setdefault(str(line["sku"]), {})[int(order["id"])] = int(line["qty"])
    return wanted


def conservation(
    orders: Iterable[Mapping[str, Any]], reservations: Reservations, *, side: str
) -> list[str]:
    """I2 on one side: every (sku, order) whose reservation differs from the placed orders.

    `reservations` must hold every sku that has any (skus absent count as holding none).
    """
    wanted = expected_reservations(orders)
    problems: list[str] = []
    for sku in sorted(set(wanted) | set(reservations)):
        want, have = wanted.get(sku, {}), reservations.get(sku, {})
        for order_id in sorted(set(want) | set(have)):
            a, b = want.get(order_id), have.get(order_id)
            if a != b:
                what = "no placed order" if a is None else f"placed order holds {a}"
                got = "no reservation" if b is None else f"reservation of {b}"
                problems.append(f"{side}: {sku} order {order_id}: {what}, {got}")
    return problems


def oversold(on_hand: Mapping[str, int], reservations: Reservations, *, side: str) -> list[str]:
    """I1: every sku whose reservations exceed its stock."""
    problems = []
    for sku, held in sorted(reservations.items()):
        total = sum(held.values())
        if total > on_hand.get(sku, 0):
            problems.append(
                f"{side}: {sku} oversold: {total} reserved, {on_hand.get(sku, 0)} on hand"
            )
    return problems
