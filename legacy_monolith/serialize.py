"""Rows to contract JSON objects, keys in the order SPEC §3 lists them (orjson keeps it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from legacy_monolith.db import Customer, Item, Order, OrderLine, Reservation, format_ts, utcnow

__all__ = [
    "customer_json",
    "dumps",
    "item_json",
    "list_json",
    "order_json",
    "reservation_json",
]


def dumps(obj: Any) -> bytes:
    """The shop's one JSON encoding: compact orjson, keys in insertion order."""
    return orjson.dumps(obj)


def customer_json(c: Customer) -> dict[str, Any]:
    """``{"id","name","email","created_at"}``."""
    return {"id": c.id, "name": c.name, "email": c.email, "created_at": format_ts(c.created_at)}


def item_json(item: Item, reserved: int) -> dict[str, Any]:
    """``{"sku","name","price_cents","on_hand","reserved","available"}``."""
    return {
        "sku": item.sku,
        "name": item.name,
        "price_cents": item.price_cents,
        "on_hand": item.on_hand,
        "reserved": reserved,
        "available": item.on_hand - reserved,
    }


def reservation_json(r: Reservation) -> dict[str, Any]:
    """``{"sku","order_id","qty"}``."""
    return {"sku": r.sku, "order_id": r.order_id, "qty": r.qty}


def order_json(order: Order, lines: Sequence[OrderLine]) -> dict[str, Any]:
    """``{"id","customer_id","status","items":[{"sku","qty","price_cents"}],"total_cents","placed_at"}``."""
    ordered = sorted(lines, key=lambda line: line.line_no)
    return {
        "id": order.id,
        "customer_id": order.customer_id,
        "status": order.status,
        "items": [{"sku": ln.sku, "qty": ln.qty, "price_cents": ln.price_cents} for ln in ordered],
        "total_cents": order.total_cents,
        "placed_at": format_ts(order.placed_at),
    }


def list_json(items: list[dict[str, Any]], total: int) -> dict[str, Any]:
    """``{"items","total","generated_at"}``; ``generated_at`` is deliberately "now"."""
    return {"items": items, "total": total, "generated_at": format_ts(utcnow())}
