"""Deterministic demo data (``random.Random(42)``), inserted only where missing (idempotent).

50 customers, 200 items ``SKU-0001``..``SKU-0200``, 1000 orders of 1..4 lines; about 10%
cancelled (nothing reserved), the others hold their reservations. Order 1 is placed.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select

from legacy_monolith.db import (
    ORIGIN,
    Customer,
    Database,
    Item,
    Order,
    OrderLine,
    Reservation,
)

__all__ = ["SEED", "SeedData", "SeedResult", "generate", "seed"]

SEED = 42
CUSTOMERS = 50
ITEMS = 200
ORDERS = 1000
CANCELLED_SHARE = 0.1
MAX_LINE_QTY = 5
# Fixed clock for seeded timestamps, so two runs produce the same rows.
EPOCH = dt.datetime(2026, 1, 1, 9, 0, 0)

_FIRST = [
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Margaret",
    "Ken",
    "Frances",
    "Dennis",
    "Radia",
    "Linus",
    "Guido",
    "Katherine",
    "John",
    "Hedy",
    "Niklaus",
    "Anita",
]
_LAST = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Hamilton",
    "Thompson",
    "Allen",
    "Ritchie",
    "Perlman",
    "Torvalds",
    "van Rossum",
    "Johnson",
    "McCarthy",
    "Lamarr",
    "Wirth",
    "Borg",
]
_ADJECTIVES = [
    "Red",
    "Blue",
    "Green",
    "Sturdy",
    "Compact",
    "Deluxe",
    "Classic",
    "Smart",
    "Tiny",
    "Giant",
    "Quiet",
    "Rapid",
    "Golden",
    "Vintage",
    "Modular",
    "Foldable",
]
_NOUNS = [
    "Widget",
    "Gadget",
    "Lamp",
    "Kettle",
    "Backpack",
    "Notebook",
    "Chair",
    "Mug",
    "Drill",
    "Speaker",
    "Blender",
    "Umbrella",
    "Bicycle Bell",
    "Desk Fan",
    "Toaster",
    "Headphones",
]


@dataclass
class SeedData:
    """The generated rows, as column dicts ready for bulk inserts."""

    customers: list[dict[str, Any]] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)
    reservations: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class SeedResult:
    """How many rows a seed run inserted, per table."""

    customers: int
    items: int
    orders: int
    lines: int
    reservations: int

    def __str__(self) -> str:
        return (
            f"seeded: {self.customers} customers, {self.items} items, {self.orders} orders, "
            f"{self.lines} order lines, {self.reservations} reservations inserted"
        )


def generate() -> SeedData:
    """Build the demo data set; the same every time."""
    rng = random.Random(SEED)
    data = SeedData()
    for cid in range(1, CUSTOMERS + 1):
        name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
        data.customers.append(
            {
                "id": cid,
                "name": name,
                "email": f"customer{cid}@example.com",
                "created_at": EPOCH + dt.timedelta(hours=cid),
                "origin": ORIGIN,
            }
        )
    available: dict[str, int] = {}
    prices: dict[str, int] = {}
    for n in range(1, ITEMS + 1):
        sku = f"SKU-{n:04d}"
        on_hand = rng.randint(50, 500)
        price = rng.randint(199, 99999)
        available[sku], prices[sku] = on_hand, price
        data.items.append(
            {
                "sku": sku,
                "name": f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} {n}",
                "price_cents": price,
                "on_hand": on_hand,
                "origin": ORIGIN,
            }
        )
    skus = list(available)
    orders_start = EPOCH + dt.timedelta(days=7)
    for oid in range(1, ORDERS + 1):
        customer_id = rng.randint(1, CUSTOMERS)
        chosen = rng.sample(skus, rng.randint(1, 4))
        qtys = [rng.randint(1, MAX_LINE_QTY) for _ in chosen]
        cancelled = oid != 1 and rng.random() < CANCELLED_SHARE
        lines: list[dict[str, Any]] = []
        for sku, qty in zip(chosen, qtys, strict=True):
            if not cancelled:
                # Never oversell, even in demo data: cap a line at what is left.
                qty = min(qty, available[sku])
                if qty < 1:
                    continue
                available[sku] -= qty
            lines.append(
                {
                    "order_id": oid,
                    "sku": sku,
                    "line_no": len(lines),
                    "qty": qty,
                    "price_cents": prices[sku],
                    "origin": ORIGIN,
                }
            )
        if not lines:
            continue
        placed_at = orders_start + dt.timedelta(minutes=37 * oid)
        data.orders.append(
            {
                "id": oid,
                "customer_id": customer_id,
                "status": "cancelled" if cancelled else "placed",
                "total_cents": sum(ln["qty"] * ln["price_cents"] for ln in lines),
                "placed_at": placed_at,
                "origin": ORIGIN,
            }
        )
        data.lines.extend(lines)
        if not cancelled:
            data.reservations.extend(
                {
                    "sku": ln["sku"],
                    "order_id": oid,
                    "qty": ln["qty"],
                    "created_at": placed_at,
                    "origin": ORIGIN,
                }
                for ln in lines
            )
    return data


def _insert(session: Any, model: Any, rows: list[dict[str, Any]]) -> int:
    if rows:
        session.execute(insert(model), rows)
    return len(rows)


def seed(db: Database) -> SeedResult:
    """Insert whatever part of the demo data is missing, in one transaction."""
    db.ensure_schema()
    data = generate()
    with db.write() as s:
        have_ids = set(s.scalars(select(Customer.id)))
        have_emails = set(s.scalars(select(Customer.email)))
        customers = [
            c for c in data.customers if c["id"] not in have_ids and c["email"] not in have_emails
        ]
        have_skus = set(s.scalars(select(Item.sku)))
        items = [i for i in data.items if i["sku"] not in have_skus]
        have_orders = set(s.scalars(select(Order.id)))
        orders = [o for o in data.orders if o["id"] not in have_orders]
        new_ids = {o["id"] for o in orders}
        lines = [ln for ln in data.lines if ln["order_id"] in new_ids]
        held = {(sku, oid) for sku, oid in s.execute(select(Reservation.sku, Reservation.order_id))}
        reservations = [
            r
            for r in data.reservations
            if r["order_id"] in new_ids and (r["sku"], r["order_id"]) not in held
        ]
        return SeedResult(
            customers=_insert(s, Customer, customers),
            items=_insert(s, Item, items),
            orders=_insert(s, Order, orders),
            lines=_insert(s, OrderLine, lines),
            reservations=_insert(s, Reservation, reservations),
        )
