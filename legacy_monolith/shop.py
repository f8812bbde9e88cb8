"""The shop's use cases on the legacy database: customers, inventory, orders.

Each function runs one transaction and returns contract JSON objects (dicts in contract key
order) or raises ``ShopError``. Writes that read stock first lock it: ``SELECT ... FOR UPDATE``
on PostgreSQL, the database write lock (``BEGIN IMMEDIATE``) on SQLite.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from sqlalchemy import Select, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from legacy_monolith import errors
from legacy_monolith.db import (
    ORIGIN,
    Customer,
    Database,
    IdempotencyKey,
    Item,
    Order,
    OrderLine,
    Reservation,
    next_id,
    utcnow,
)
from legacy_monolith.serialize import (
    customer_json,
    dumps,
    item_json,
    list_json,
    order_json,
    reservation_json,
)
from legacy_monolith.validation import NewCustomer, Page, PlaceOrder, parse_place_order

__all__ = [
    "IDEMPOTENCY_TTL",
    "cancel_order",
    "create_customer",
    "customer_orders",
    "get_customer",
    "get_item",
    "get_order",
    "list_customers",
    "list_items",
    "list_orders",
    "list_reservations",
    "place_order",
    "release",
    "reserve",
    "restock",
]

PLACED = "placed"
CANCELLED = "cancelled"
# Idempotency keys are kept at least this long, then purged lazily.
IDEMPOTENCY_TTL = dt.timedelta(hours=24)
# Attempts of a write that lost a race on a unique key (same Idempotency-Key or email).
_WRITE_ATTEMPTS = 3


# --- customers ---------------------------------------------------------------------------


def list_customers(db: Database, page: Page) -> dict[str, Any]:
    """``GET /api/customers``."""
    with db.read() as s:
        total = s.scalar(select(func.count()).select_from(Customer)) or 0
        rows = s.scalars(
            select(Customer).order_by(Customer.id).limit(page.limit).offset(page.offset)
        )
        return list_json([customer_json(c) for c in rows], total)


def get_customer(db: Database, customer_id: int) -> dict[str, Any]:
    """``GET /api/customers/{id}``."""
    with db.read() as s:
        customer = s.get(Customer, customer_id)
        if customer is None:
            raise errors.customer_not_found(customer_id)
        return customer_json(customer)


def create_customer(db: Database, new: NewCustomer) -> dict[str, Any]:
    """``POST /api/customers``: 201 customer, or 409 ``duplicate_email``."""
    try:
        with db.write() as s:
            customer_id = next_id(s, Customer)
            # Checked after next_id: its lock serialises creators, so this read is current.
            if s.scalar(select(Customer.id).where(Customer.email == new.email)) is not None:
                raise errors.duplicate_email(new.email)
            customer = Customer(
                id=customer_id, name=new.name, email=new.email, created_at=utcnow(), origin=ORIGIN
            )
            s.add(customer)
            s.flush()
            return customer_json(customer)
    except IntegrityError:
        # A row copied in by an event (not under our lock) took the email first.
        raise errors.duplicate_email(new.email) from None


def customer_orders(db: Database, customer_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A customer and all their orders (for the account page)."""
    with db.read() as s:
        customer = s.get(Customer, customer_id)
        if customer is None:
            raise errors.customer_not_found(customer_id)
        orders = list(
            s.scalars(select(Order).where(Order.customer_id == customer_id).order_by(Order.id))
        )
        return customer_json(customer), _orders_json(s, orders)


# --- inventory ---------------------------------------------------------------------------


def _reserved_by_sku() -> Any:
    return (
        select(Reservation.sku, func.sum(Reservation.qty).label("reserved"))
        .group_by(Reservation.sku)
        .subquery()
    )


def _items_with_reserved() -> Select[Any]:
    sums = _reserved_by_sku()
    return select(Item, func.coalesce(sums.c.reserved, 0)).outerjoin(sums, sums.c.sku == Item.sku)


def _reserved(s: Session, skus: Iterable[str]) -> dict[str, int]:
    rows = s.execute(
        select(Reservation.sku, func.sum(Reservation.qty))
        .where(Reservation.sku.in_(list(skus)))
        .group_by(Reservation.sku)
    )
    return {sku: int(total) for sku, total in rows}


def _lock_item(db: Database, s: Session, sku: str) -> Item:
    query = select(Item).where(Item.sku == sku)
    if db.is_postgres:
        query = query.with_for_update()
    item = s.scalar(query)
    if item is None:
        raise errors.item_not_found(sku)
    return item


def list_items(db: Database, page: Page) -> dict[str, Any]:
    """``GET /api/inventory``."""
    with db.read() as s:
        total = s.scalar(select(func.count()).select_from(Item)) or 0
        rows = s.execute(
            _items_with_reserved().order_by(Item.sku).limit(page.limit).offset(page.offset)
        )
        return list_json([item_json(item, int(reserved)) for item, reserved in rows], total)


def all_items(db: Database) -> list[dict[str, Any]]:
    """Every item with its availability, by sku (for the shop home page)."""
    with db.read() as s:
        rows = s.execute(_items_with_reserved().order_by(Item.sku))
        return [item_json(item, int(reserved)) for item, reserved in rows]


def get_item(db: Database, sku: str) -> dict[str, Any]:
    """``GET /api/inventory/{sku}``."""
    with db.read() as s:
        row = s.execute(_items_with_reserved().where(Item.sku == sku)).first()
        if row is None:
            raise errors.item_not_found(sku)
        item, reserved = row
        return item_json(item, int(reserved))


def require_item(db: Database, sku: str) -> None:
    """Raise 404 ``not_found`` unless `sku` exists."""
    with db.read() as s:
        if s.get(Item, sku) is None:
            raise errors.item_not_found(sku)


def reserve(db: Database, sku: str, order_id: int, qty: int) -> tuple[int, dict[str, Any]]:
    """``POST /api/inventory/{sku}/reservations``: (201 | 200, reservation) or 409."""
    with db.write() as s:
        item = _lock_item(db, s, sku)
        existing = s.get(Reservation, (sku, order_id))
        if existing is not None:
            if existing.qty == qty:
                return 200, reservation_json(existing)
            raise errors.reservation_conflict(sku, order_id)
        if item.on_hand - _reserved(s, [sku]).get(sku, 0) < qty:
            raise errors.insufficient_stock(sku)
        reservation = Reservation(
            sku=sku, order_id=order_id, qty=qty, created_at=utcnow(), origin=ORIGIN
        )
        s.add(reservation)
        s.flush()
        return 201, reservation_json(reservation)


def list_reservations(db: Database, sku: str, page: Page) -> dict[str, Any]:
    """``GET /api/inventory/{sku}/reservations``, ordered by order_id."""
    with db.read() as s:
        if s.get(Item, sku) is None:
            raise errors.item_not_found(sku)
        where = Reservation.sku == sku
        total = s.scalar(select(func.count()).select_from(Reservation).where(where)) or 0
        rows = s.scalars(
            select(Reservation)
            .where(where)
            .order_by(Reservation.order_id)
            .limit(page.limit)
            .offset(page.offset)
        )
        return list_json([reservation_json(r) for r in rows], total)


def release(db: Database, sku: str, order_id: int) -> None:
    """``DELETE /api/inventory/{sku}/reservations/{order_id}``; nothing to release is fine."""
    with db.write() as s:
        if s.get(Item, sku) is None:
            raise errors.item_not_found(sku)
        s.execute(
            delete(Reservation).where(Reservation.sku == sku, Reservation.order_id == order_id)
        )


def restock(db: Database, sku: str, qty: int) -> dict[str, Any]:
    """``POST /api/inventory/{sku}/restock``: on_hand += qty, 200 item."""
    with db.write() as s:
        item = _lock_item(db, s, sku)
        item.on_hand += qty
        s.flush()
        return item_json(item, _reserved(s, [sku]).get(sku, 0))


# --- orders ------------------------------------------------------------------------------


def _orders_json(s: Session, orders: Sequence[Order]) -> list[dict[str, Any]]:
    lines: dict[int, list[OrderLine]] = {o.id: [] for o in orders}
    if orders:
        for line in s.scalars(select(OrderLine).where(OrderLine.order_id.in_(list(lines)))):
            lines[line.order_id].append(line)
    return [order_json(o, lines[o.id]) for o in orders]


def list_orders(db: Database, page: Page, customer_id: int | None) -> dict[str, Any]:
    """``GET /api/orders[?customer_id=]``."""
    with db.read() as s:
        count = select(func.count()).select_from(Order)
        query = select(Order).order_by(Order.id).limit(page.limit).offset(page.offset)
        if customer_id is not None:
            count = count.where(Order.customer_id == customer_id)
            query = query.where(Order.customer_id == customer_id)
        total = s.scalar(count) or 0
        return list_json(_orders_json(s, list(s.scalars(query))), total)


def get_order(db: Database, order_id: int) -> dict[str, Any]:
    """``GET /api/orders/{id}``."""
    with db.read() as s:
        order = s.get(Order, order_id)
        if order is None:
            raise errors.order_not_found(order_id)
        return _orders_json(s, [order])[0]


def cancel_order(db: Database, order_id: int) -> dict[str, Any]:
    """``POST /api/orders/{id}/cancel``: status cancelled, reservations released; idempotent."""
    with db.write() as s:
        query = select(Order).where(Order.id == order_id)
        if db.is_postgres:
            query = query.with_for_update()
        order = s.scalar(query)
        if order is None:
            raise errors.order_not_found(order_id)
        if order.status != CANCELLED:
            order.status = CANCELLED
            s.execute(delete(Reservation).where(Reservation.order_id == order_id))
            s.flush()
        return _orders_json(s, [order])[0]


def _place(db: Database, s: Session, cmd: PlaceOrder) -> dict[str, Any]:
    """Check customer, skus and stock, then write the order, its lines and reservations."""
    if s.get(Customer, cmd.customer_id) is None:
        raise errors.unknown_customer(cmd.customer_id)
    skus = sorted(line.sku for line in cmd.lines)
    query = select(Item).where(Item.sku.in_(skus)).order_by(Item.sku)
    if db.is_postgres:
        # Lock in sku order so two orders on overlapping skus cannot deadlock.
        query = query.with_for_update()
    items = {item.sku: item for item in s.scalars(query)}
    for line in cmd.lines:
        if line.sku not in items:
            raise errors.unknown_sku(line.sku)
    reserved = _reserved(s, skus)
    for line in cmd.lines:
        if items[line.sku].on_hand - reserved.get(line.sku, 0) < line.qty:
            raise errors.insufficient_stock(line.sku)
    order_id = next_id(s, Order)
    now = utcnow()
    lines = [
        OrderLine(
            order_id=order_id,
            sku=line.sku,
            line_no=index,
            qty=line.qty,
            price_cents=items[line.sku].price_cents,
            origin=ORIGIN,
        )
        for index, line in enumerate(cmd.lines)
    ]
    order = Order(
        id=order_id,
        customer_id=cmd.customer_id,
        status=PLACED,
        total_cents=sum(ln.qty * ln.price_cents for ln in lines),
        placed_at=now,
        origin=ORIGIN,
    )
    s.add(order)
    s.flush()
    s.add_all(lines)
    s.add_all(
        Reservation(sku=ln.sku, order_id=order_id, qty=ln.qty, created_at=now, origin=ORIGIN)
        for ln in lines
    )
    s.flush()
    return order_json(order, lines)


_UNPARSABLE = object()


def _loose_json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _UNPARSABLE


def json_equal(a: Any, b: Any) -> bool:
    """Equal parsed JSON, where ``true`` is not ``1`` (Python's ``==`` alone says it is)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict | list) or isinstance(b, dict | list):
        return False
    return bool(a == b)


def place_order(db: Database, raw: bytes, key: str | None) -> tuple[int, bytes]:
    """``POST /api/orders``: reserve stock and price the order in one transaction.

    With an Idempotency-Key the key is checked before anything else: a stored key with an
    equal body replays the stored 201, with another body answers 422. Returns (status, body).
    """
    if key is None:
        cmd, _ = parse_place_order(raw)
        with db.write() as s:
            return 201, dumps(_place(db, s, cmd))
    if len(key) > 255:
        raise errors.validation_error("Idempotency-Key", errors.KEY_TOO_LONG)
    sent = _loose_json(raw)
    for attempt in range(_WRITE_ATTEMPTS):
        try:
            with db.write() as s:
                s.execute(
                    delete(IdempotencyKey).where(
                        IdempotencyKey.created_at < utcnow() - IDEMPOTENCY_TTL
                    )
                )
                stored = s.get(IdempotencyKey, key)
                if stored is not None:
                    if sent is not _UNPARSABLE and json_equal(
                        orjson.loads(stored.request_body), sent
                    ):
                        return stored.status_code, stored.response_body.encode()
                    raise errors.idempotency_key_reused()
                cmd, body = parse_place_order(raw)
                answer = dumps(_place(db, s, cmd))
                s.add(
                    IdempotencyKey(
                        key=key,
                        request_body=dumps(body).decode(),
                        status_code=201,
                        response_body=answer.decode(),
                        created_at=utcnow(),
                        origin=ORIGIN,
                    )
                )
                s.flush()
                return 201, answer
        except IntegrityError:
            # A concurrent request stored the same key first; its transaction won, ours is
            # rolled back (nothing placed). Loop to replay its answer.
            if attempt == _WRITE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
