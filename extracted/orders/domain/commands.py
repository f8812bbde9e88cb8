"""Commands: what a caller asks the orders service to do (imperative names)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LineRequest:
    """One requested line: a sku and a quantity (>= 1)."""

    sku: str
    qty: int


@dataclass(frozen=True)
class PlaceOrder:
    """Place an order for `customer_id` with `lines` (skus unique, in the customer's order)."""

    customer_id: int
    lines: tuple[LineRequest, ...]


@dataclass(frozen=True)
class CancelOrder:
    """Cancel order `order_id`, releasing its stock."""

    order_id: int
