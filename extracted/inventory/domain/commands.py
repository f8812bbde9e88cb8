"""Commands: what a caller asks the inventory to do (imperative names)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reserve:
    """Hold `qty` units of `sku` for `order_id`."""

    sku: str
    order_id: int
    qty: int


@dataclass(frozen=True)
class Release:
    """Drop `order_id`'s reservation of `sku`."""

    sku: str
    order_id: int


@dataclass(frozen=True)
class Restock:
    """Add `qty` units to `sku`'s on_hand."""

    sku: str
    qty: int
