"""Use cases: place (a saga over inventory reservations), cancel, get and list orders."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from extracted.contract.shapes import NEW_SERVICES_ID_FLOOR, utc_stamp
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
from extracted.orders.domain.idempotency import KeyRecord, json_equal
from extracted.orders.domain.model import (
    Order,
    OrderLine,
    OrderStatus,
    Origin,
)
from extracted.orders.service.ports import (
    CustomersPort,
    InventoryPort,
    ItemInfo,
    LegacyOrdersPort,
)
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


async def get_order(
    order_id: int, uow: UnitOfWork, legacy: LegacyOrdersPort | None = None
) -> Order:
    """A visible order by id, or NotFound; with `legacy`, a miss in its id range is repaired.

    Read-repair: an order the legacy placed may not have reached us yet (event lag, or a
    backfill that missed it). Answering 404 for a record that exists would be wrong, so a
    miss below NEW_SERVICES_ID_FLOOR asks the legacy once; a copy found there is merged (lattice) and
    served. When the legacy cannot answer we do not know, so the answer is 503
    dependency_unavailable rather than 404: a GET is idempotent, and the gateway falls back
    to the legacy on a 503 instead of passing on a wrong 404.
    """

    def tx() -> Order | None:
        with uow:
            return uow.orders.get(order_id)

    order = await asyncio.to_thread(tx)
    if order is not None and order.visible:
        return order
    if order is not None or legacy is None or order_id >= NEW_SERVICES_ID_FLOOR:
        raise NotFound.order(order_id)
    theirs = await legacy.get(order_id)
    if theirs is None:
        raise NotFound.order(order_id)

    def repair() -> Order | None:
        with uow:
            uow.orders.merge([theirs])
            uow.commit()
            return uow.orders.get(order_id)

    repaired = await asyncio.to_thread(repair)
    if repaired is None or not repaired.visible:  # pragma: no cover - just merged
        raise NotFound.order(order_id)
    log.info("read-repair: order %s copied from the legacy", order_id)
    return repaired


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
            record = None if key is None else KeyRecord(key, body, answer.order)
            uow.publish([OrderPlaced(placed, record)])
            if key is not None:
                uow.keys.purge(now - KEY_TTL)
                uow.keys.store(StoredAnswer(key, body, answer.order, now, order.id))
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


async def cancel_order(
    cmd: CancelOrder,
    uow: UnitOfWork,
    inventory: InventoryPort,
    legacy: LegacyOrdersPort | None = None,
    *,
    clock: Clock = time.time,
) -> Order:
    """Cancel an order (either side's): release each line, then `cancelled` + `order.cancelled`.

    The cancel request is recorded before the first release: if a release fails half-way or
    the process dies, reconciliation (`finish_cancels`) completes it, so a placed order never
    stays with part of its stock released. When inventory certainly did nothing (breaker open,
    connection refused) the request is dropped again: 503 and nothing changed. Cancelling a
    cancelled order answers it unchanged.
    """
    order = await get_order(cmd.order_id, uow, legacy)
    if order.status is OrderStatus.CANCELLED:
        return order

    def record() -> None:
        with uow:
            uow.orders.request_cancel(order.id, clock())
            uow.commit()

    await asyncio.to_thread(record)
    released = 0
    try:
        for line in order.lines:
            await inventory.release(line.sku, order.id)
            released += 1
    except DependencyUnavailable as exc:
        if released == 0 and not exc.maybe_done:

            def drop() -> None:
                with uow:
                    uow.orders.drop_cancel_request(order.id)
                    uow.commit()

            await asyncio.to_thread(drop)
        else:
            log.warning("order %s: cancel half-done, left for reconciliation", order.id)
        raise
    result = await asyncio.to_thread(_mark_cancelled, order, uow)
    if result is None:  # pragma: no cover - orders are never deleted
        raise NotFound.order(cmd.order_id)
    return result


def _mark_cancelled(order: Order, uow: UnitOfWork) -> Order | None:
    """`placed -> cancelled` with its event, in one transaction; the cancel request is done."""
    cancelled = order.cancelled()
    with uow:
        uow.orders.drop_cancel_request(order.id)
        if uow.orders.set_status(
            order.id, [OrderStatus.PLACED], OrderStatus.CANCELLED, Origin.ORDERS
        ):
            key = uow.keys.for_order(order.id)
            uow.publish([OrderCancelled(cancelled, None if key is None else key.record())])
            uow.commit()
            return cancelled
        uow.commit()
        return uow.orders.get(order.id)  # a concurrent cancel won (ours or the legacy's)


async def finish_cancels(
    uow: UnitOfWork, inventory: InventoryPort, *, older_than: float, clock: Clock = time.time
) -> int:
    """Complete cancels recorded more than `older_than` seconds ago (a crash or a half-way
    failure left them); returns how many orders were cancelled. Releases are idempotent, so
    finishing a cancel that is still running elsewhere is harmless.
    """

    def pending() -> list[Order | None]:
        with uow:
            ids = uow.orders.cancel_requests(clock() - older_than)
            return [uow.orders.get(i) for i in ids]

    done = 0
    for order in await asyncio.to_thread(pending):
        if order is None:  # pragma: no cover - orders are never deleted
            continue
        if order.status is not OrderStatus.PLACED:  # cancelled meanwhile (here or elsewhere)

            def drop(order_id: int = order.id) -> None:
                with uow:
                    uow.orders.drop_cancel_request(order_id)
                    uow.commit()

            await asyncio.to_thread(drop)
            continue
        try:
            for line in order.lines:
                await inventory.release(line.sku, order.id)
        except DependencyUnavailable:
            log.warning("order %s: cancel still cannot release; retrying later", order.id)
            continue
        await asyncio.to_thread(_mark_cancelled, order, uow)
        done += 1
        log.info("finished the cancel of order %s", order.id)
    return done
