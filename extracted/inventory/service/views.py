"""The contract's JSON shapes (SPEC §3 key order) built from domain objects, and back."""

from __future__ import annotations

from typing import Any

from extracted.inventory.domain.model import Item, ItemState, Reservation


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


def state_of_changed(data: dict[str, Any]) -> ItemState:
    """The item state an `inventory.changed` payload carries (already validated by the schema)."""
    item = data["item"]
    return ItemState(
        sku=item["sku"],
        name=item["name"],
        price_cents=item["price_cents"],
        on_hand=item["on_hand"],
        reservations={int(r["order_id"]): int(r["qty"]) for r in data["reservations"]},
    )
