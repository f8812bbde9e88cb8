"""Valid sample events for the events tests (data shaped exactly like the HTTP contract)."""

from __future__ import annotations

from extracted.events import Event, inventory_changed
from extracted.events import order_event as _order_event


def order_json(order_id: int = 1_000_000_001, status: str = "placed") -> dict:
    """An order as the HTTP contract renders it."""
    return {
        "id": order_id,
        "customer_id": 1,
        "status": status,
        "items": [
            {"sku": "SKU-0001", "qty": 2, "price_cents": 250},
            {"sku": "SKU-0002", "qty": 1, "price_cents": 1000},
        ],
        "total_cents": 1500,
        "placed_at": "2026-11-25T12:00:00Z",
    }


def order_event(
    order_id: int = 1_000_000_001, status: str = "placed", origin: str = "orders"
) -> Event:
    """order.placed (or order.cancelled when status is cancelled)."""
    return _order_event(order_json(order_id, status), origin)


def inventory_event(
    sku: str = "SKU-0001",
    on_hand: int = 100,
    reservations: list[tuple[int, int]] | None = None,
    origin: str = "inventory",
    price_cents: int = 250,
    name: str = "Widget",
    version: int = 1,
) -> Event:
    """inventory.changed with the item's full state and all of its reservations."""
    res = [{"sku": sku, "order_id": o, "qty": q} for o, q in (reservations or [])]
    reserved = sum(q for _o, q in reservations or [])
    item = {
        "sku": sku,
        "name": name,
        "price_cents": price_cents,
        "on_hand": on_hand,
        "reserved": reserved,
        "available": on_hand - reserved,
    }
    return inventory_changed(item, res, origin, version)


def numbered_events(n: int) -> list[Event]:
    """`n` distinct order.placed events (order ids 1e9+1 .. 1e9+n)."""
    return [order_event(1_000_000_000 + i) for i in range(1, n + 1)]
