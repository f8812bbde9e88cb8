"""Use cases: place (a saga over inventory reservations), cancel, get and list orders."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from extracted.orders.domain.commands import CancelOrder, PlaceOrder
from extracted.orders.domain.errors import (
    DependencyUnavailable,
    IdempotencyKeyReused,
    InsufficientStock,
    NotFound,
    UnknownCustomer,
    UnknownSku,
)
from extracted.orders.domain.events import OrderCancelled, OrderPlaced
from extracted.orders.domain.idempotency import json_equal
from extracted.orders.domain.model import (
    Order,
    OrderLine,
    OrderStatus,
    Origin,
    utc_stamp,
)
from extracted.orders.service.ports import CustomersPort, InventoryPort, ItemInfo
from extracted.orders.service.unit_of_work import KeyAlreadyStored, StoredAnswer, UnitOfWork

log = logging.getLogger(__name__)

#: Idempotency-Keys are kept at least this long (seconds).
KEY_TTL = 24 * 3600.0

Clock = Callable[[], float]


@dataclass(frozen=True)
class Placed:
    """The answer to a place request: the order JSON, and whether it is a replay."""

    order: dict[str, Any]
    replayed: bool = False


async def get_order(order_id: int, uow: UnitOfWork) -> Order:
    """A visible order by id, or NotFound."""

    def tx() -> Order | None:
        with uow:
            return uow.orders.get(order_id)

    order = await asyncio.to_thread(tx)
    if order is None or not order.visible:
        raise NotFound.order(order_id)
    return order


async def list_orders(
    uow: UnitOfWork, *, customer_id: int | None, limit: int, offset: int
) -> tuple[list[Order], int]:
    """One page of visible orders by id, and how many there are."""

    def tx() -> tuple[list[Order], int]:
        with uow:
            return uow.orders.list_visible(customer_id, limit, offset)

    return await asyncio.to_thread(tx)


async def find_answer(key: str, body: Any, uow: UnitOfWork) -> Placed | None:
    """The replayed answer for a stored Idempotency-Key with an equal body, else None.

    Raises IdempotencyKeyReused when the key was stored with another body.
    """

    def tx() -> StoredAnswer | None:
        with uow:
            return uow.keys.find(key)

    stored = await asyncio.to_thread(tx)
    if stored is None:
        return None
    if not json_equal(stored.request, body):
        raise IdempotencyKeyReused()
    return Placed(stored.response, replayed=True)


async def place_order(
    cmd: PlaceOrder,
    uow: UnitOfWork,
    inventory: InventoryPort,
    customers: CustomersPort,
    *,
    key: str | None = None,
    body: Any = None,
    clock: Clock = time.time,
) -> Placed:
    """Place an order: customer and sku checks, then the reservation saga.

    The order is stored `pending`, each line reserved with the new id, then the order is
    marked `placed` with its `order.placed` event (and the Idempotency-Key, if any) in one
    transaction. Any failure releases what was reserved; a crash leaves a pending order that
    `reconcile` releases later.
    """
    if not await customers.exists(cmd.customer_id):
        raise UnknownCustomer(cmd.customer_id)
    items: dict[str, ItemInfo] = {}
    for line in cmd.lines:
        item = await inventory.item(line.sku)
        if item is None:
            raise UnknownSku(line.sku)
        items[line.sku] = item
    # Refuse early what cannot succeed, before anything is stored or reserved.
    for line in cmd.lines:
        if items[line.sku].available < line.qty:
            raise InsufficientStock(line.sku, line.qty, items[line.sku].available)

    now = clock()
    lines = tuple(OrderLine(r.sku, r.qty, items[r.sku].price_cents) for r in cmd.lines)

    def insert_pending() -> Order:
        with uow:
            order = Order(
                id=uow.orders.next_id(),
                customer_id=cmd.customer_id,
                status=OrderStatus.PENDING,
                lines=lines,
                placed_at=utc_stamp(now),
                origin=Origin.ORDERS,
                created_at=now,
            )
            uow.orders.add(order)
            uow.commit()
            return order

    order = await asyncio.to_thread(insert_pending)
    try:
        for ln in order.lines:
            try:
                await inventory.reserve(ln.sku, order.id, ln.qty)
            except InsufficientStock as exc:
                # Re-raise with what we know of the item, so the text matches the legacy's.
                raise InsufficientStock(ln.sku, ln.qty, items[ln.sku].available) from exc
    except Exception:
        await abandon(order, uow, inventory)
        raise

    placed = replace(order, status=OrderStatus.PLACED)
    answer = Placed(placed.to_json())

    def mark_placed() -> bool:
        with uow:
            if not uow.orders.set_status(
                order.id, [OrderStatus.PENDING], OrderStatus.PLACED, Origin.ORDERS
            ):
                return False  # reconciliation claimed it meanwhile; it releases the stock
            uow.publish([OrderPlaced(placed)])
            if key is not None:
                uow.keys.purge(now - KEY_TTL)
                uow.keys.store(StoredAnswer(key, body, answer.order, now))
            uow.commit()
            return True

    try:
        done = await asyncio.to_thread(mark_placed)
    except KeyAlreadyStored:
        # A concurrent request with the same key won: undo ours, answer theirs.
        await abandon(order, uow, inventory)
        replay = await find_answer(key or "", body, uow)
        if replay is None:  # pragma: no cover - the key was just seen stored
            raise DependencyUnavailable("database") from None
        return replay
    if not done:
        # Reconciliation took the order while we were still reserving: lines we reserved after
        # its release would leak, so release everything again (idempotent) before refusing.
        await abandon(order, uow, inventory)
        raise DependencyUnavailable("inventory")
    return answer


async def abandon(order: Order, uow: UnitOfWork, inventory: InventoryPort) -> bool:
    """Release every line of a failed or stale order, then mark it failed.

    Returns False when inventory could not be reached: the order stays `releasing` and the
    next reconciliation retries. Releasing a line never reserved is a harmless no-op.
    """

    def claim() -> None:
        with uow:
            uow.orders.set_status(
                order.id, [OrderStatus.PENDING], OrderStatus.RELEASING, Origin.ORDERS
            )
            uow.commit()

    await asyncio.to_thread(claim)
    try:
        for line in order.lines:
            await inventory.release(line.sku, order.id)
    except DependencyUnavailable:
        log.warning("order %s: release failed, left for reconciliation", order.id)
        return False

    def fail() -> None:
        with uow:
            uow.orders.set_status(
                order.id, [OrderStatus.RELEASING], OrderStatus.FAILED, Origin.ORDERS
            )
            uow.commit()

    await asyncio.to_thread(fail)
    return True


async def cancel_order(cmd: CancelOrder, uow: UnitOfWork, inventory: InventoryPort) -> Order:
    """Cancel an order: release each line, then `cancelled` + `order.cancelled` in one transaction.

    Cancelling a cancelled order answers it unchanged.
    """
    order = await get_order(cmd.order_id, uow)
    if order.status is OrderStatus.CANCELLED:
        return order
    for line in order.lines:
        await inventory.release(line.sku, order.id)
    cancelled = order.cancelled()

    def mark_cancelled() -> Order | None:
        with uow:
            if uow.orders.set_status(
                order.id, [OrderStatus.PLACED], OrderStatus.CANCELLED, Origin.ORDERS
            ):
                uow.publish([OrderCancelled(cancelled)])
                uow.commit()
                return cancelled
            return uow.orders.get(order.id)  # a concurrent cancel won

    result = await asyncio.to_thread(mark_cancelled)
    if result is None:  # pragma: no cover - orders are never deleted
        raise NotFound.order(cmd.order_id)
    return result
