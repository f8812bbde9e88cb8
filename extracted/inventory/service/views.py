"""The contract's JSON shapes (SPEC §3 key order) built from domain objects."""

from __future__ import annotations

from typing import Any

from extracted.inventory.domain.model import Item, Reservation


def item_json(item: Item) -> dict[str, Any]:
    """`{"sku","name","price_cents","on_hand","reserved","available"}`."""
    reserved = item.reserved
    return {
        "sku": item.sku,
        "name": item.name,
        "price_cents": item.price_cents,
        "on_hand": item.on_hand,
        "reserved": reserved,
        "available": item.on_hand - reserved,
    }


def reservation_json(reservation: Reservation) -> dict[str, Any]:
    """`{"sku","order_id","qty"}`."""
    return {"sku": reservation.sku, "order_id": reservation.order_id, "qty": reservation.qty}


def inventory_changed_data(item: Item) -> dict[str, Any]:
    """The `inventory.changed` payload: the item and all its reservations by order_id."""
    return {
        "item": item_json(item),
        "reservations": [reservation_json(r) for r in item.sorted_reservations()],
    }
