"""The legacy's transactional outbox: a SQLAlchemy session hook, not a trigger per table (SPEC §3).

Every write session of the legacy records which records its flushes touched; just before the
commit it writes one event per touched record into the `outbox` table, in the same transaction:

* an order the legacy placed or cancelled -> `order.placed` / `order.cancelled` (the order with
  its lines; the Idempotency-Key's request and answer when it was placed under one);
* when the legacy is the stock authority, an item whose stock (on_hand or reservations) changed
  -> its `version` is bumped and `inventory.changed` carries the item and all its reservations.

A session that applies another side's events sets ``session.info[APPLYING]`` and publishes
nothing, so nothing is echoed. The relay (`OutboxRelay`, run by `python -m legacy_monolith
consume`) publishes the rows at least once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect, select, update
from sqlalchemy.orm import Session, sessionmaker

from extracted.events import add_to_outbox, inventory_changed, order_event
from extracted.stock_authority import stock_authority
from legacy_monolith.db import ORIGIN, Item, Order, OrderLine, Reservation, outbox
from legacy_monolith.serialize import item_json, order_json, reservation_json

__all__ = ["APPLYING", "IDEMPOTENCY", "VERSIONS", "install_outbox_hook"]

# session.info keys
APPLYING = "applying_origin"  # set by the consumer: changes copied from another side
IDEMPOTENCY = "idempotency"  # {order_id: {"key", "request", "response"}} set by place_order
VERSIONS = "stock_versions"  # {sku: version} written by this commit (for X-Stock-Version)
_ORDERS = "touched_orders"
_ITEMS = "touched_items"


def install_outbox_hook(factory: sessionmaker[Session]) -> None:
    """Record every write session's changes of `factory` in the outbox at commit."""
    authority_is_legacy = stock_authority() == "legacy"

    @event.listens_for(factory, "after_flush")
    def _collect(session: Session, _ctx: Any) -> None:
        if session.info.get(APPLYING):
            return
        orders: set[int] = session.info.setdefault(_ORDERS, set())
        items: set[str] = session.info.setdefault(_ITEMS, set())
        for obj in session.new:
            if isinstance(obj, Order) and obj.origin == ORIGIN:
                orders.add(obj.id)
        for obj in session.dirty:
            if isinstance(obj, Order) and obj.origin == ORIGIN:
                if inspect(obj).attrs.status.history.has_changes():
                    orders.add(obj.id)
        if authority_is_legacy:
            for obj in (*session.new, *session.dirty, *session.deleted):
                if isinstance(obj, Reservation):
                    items.add(obj.sku)
                elif isinstance(obj, Item):
                    state = inspect(obj)
                    if obj in session.new or state.attrs.on_hand.history.has_changes():
                        items.add(obj.sku)

    @event.listens_for(factory, "before_commit")
    def _publish(session: Session) -> None:
        if session.info.get(APPLYING):
            return
        done_orders: set[int] = set()
        done_items: set[str] = set()
        # Writing the events may autoflush more changes; loop until nothing new was touched.
        while True:
            session.flush()
            orders = session.info.get(_ORDERS, set()) - done_orders
            items = session.info.get(_ITEMS, set()) - done_items
            if not orders and not items:
                break
            for order_id in sorted(orders):
                _order_event(session, order_id)
            for sku in sorted(items):
                _item_event(session, sku)
            done_orders |= orders
            done_items |= items
        session.info.pop(_ORDERS, None)
        session.info.pop(_ITEMS, None)


def _order_event(session: Session, order_id: int) -> None:
    order = session.get(Order, order_id)
    if order is None:  # pragma: no cover - orders are never deleted
        return
    lines = list(
        session.scalars(
            select(OrderLine).where(OrderLine.order_id == order_id).order_by(OrderLine.line_no)
        )
    )
    idem = session.info.get(IDEMPOTENCY, {}).get(order_id) if order.status == "placed" else None
    add_to_outbox(session, outbox, order_event(order_json(order, lines), ORIGIN, idempotency=idem))


def _item_event(session: Session, sku: str) -> None:
    session.execute(update(Item).where(Item.sku == sku).values(version=Item.version + 1))
    item = session.scalar(
        select(Item).where(Item.sku == sku).execution_options(populate_existing=True)
    )
    if item is None:  # pragma: no cover - items are never deleted
        return
    reservations = list(
        session.scalars(
            select(Reservation).where(Reservation.sku == sku).order_by(Reservation.order_id)
        )
    )
    reserved = int(sum(r.qty for r in reservations))
    add_to_outbox(
        session,
        outbox,
        inventory_changed(
            item_json(item, reserved),
            [reservation_json(r) for r in reservations],
            ORIGIN,
            item.version,
        ),
    )
    session.info.setdefault(VERSIONS, {})[sku] = item.version
