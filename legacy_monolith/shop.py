"""The shop's use cases on the legacy database: customers, inventory, orders.

Each function runs one transaction and returns contract JSON objects (dicts in contract key
order) or raises ``ShopError``. Writes that read stock first lock it: ``SELECT ... FOR UPDATE``
on PostgreSQL, the database write lock (``BEGIN IMMEDIATE``) on SQLite.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import orjson
from sqlalchemy import CursorResult, Select, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from legacy_monolith import errors
from legacy_monolith.db import (
    ORIGIN,
    CancelRequest,
    Customer,
    Database,
    IdempotencyKey,
    Item,
    Order,
    OrderLine,
    PendingOrder,
    Reservation,
    StockOp,
    next_id,
    utcnow,
)
from legacy_monolith.outbox import APPLYING, IDEMPOTENCY, VERSIONS
from legacy_monolith.serialize import (
    customer_json,
    dumps,
    item_json,
    list_json,
    order_json,
    reservation_json,
)
from legacy_monolith.stock import AuthorityUnavailable, RemoteStock
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


def reserve(
    db: Database, sku: str, order_id: int, qty: int, stock: RemoteStock | None = None
) -> tuple[int, dict[str, Any], int]:
    """``POST /api/inventory/{sku}/reservations``: (201 | 200, reservation, stock version) or 409.

    With a remote authority (`stock`), the authority decides and the read copy learns at once.
    """
    if stock is not None:
        answer = stock.reserve(sku, order_id, qty)
        apply_own_write(db, sku, answer.version, lambda s, _i: _hold(s, sku, order_id, qty))
        return answer.status, answer.body, answer.version
    with db.write() as s:
        item = _lock_item(db, s, sku)
        existing = s.get(Reservation, (sku, order_id))
        if existing is not None:
            if existing.qty == qty:
                return 200, reservation_json(existing), item.version
            raise errors.reservation_conflict(sku, order_id)
        if item.on_hand - _reserved(s, [sku]).get(sku, 0) < qty:
            raise errors.insufficient_stock(sku)
        reservation = Reservation(
            sku=sku, order_id=order_id, qty=qty, created_at=utcnow(), origin=ORIGIN
        )
        s.add(reservation)
        s.flush()
        created = reservation_json(reservation)
    return 201, created, s.info[VERSIONS][sku]


def _hold(s: Session, sku: str, order_id: int, qty: int) -> None:
    if s.get(Reservation, (sku, order_id)) is None:
        s.add(
            Reservation(
                sku=sku, order_id=order_id, qty=qty, created_at=utcnow(), origin="inventory"
            )
        )


def _unhold(s: Session, sku: str, order_id: int) -> None:
    held = s.get(Reservation, (sku, order_id))
    if held is not None:
        s.delete(held)


def _holding(sku: str, order_id: int, qty: int) -> Callable[[Session, Item], None]:
    """The read-copy change `_own_write` applies for a reservation the authority confirmed."""
    return lambda s, _item: _hold(s, sku, order_id, qty)


def _unholding(sku: str, order_id: int) -> Callable[[Session, Item], None]:
    """The read-copy change `_own_write` applies for a release the authority confirmed."""
    return lambda s, _item: _unhold(s, sku, order_id)


def apply_own_write(
    db: Database, sku: str, version: int, change: Callable[[Session, Item], None]
) -> None:
    """Apply a write the remote authority accepted (at `version`) to the legacy's read copy now.

    Read-your-writes without ever going back: the change is applied only while the copy is older
    than `version`, and `floor_version` makes the consumer ignore events that predate it.
    """
    with db.write() as s:
        s.info[APPLYING] = "inventory"
        _own_write(s, db, sku, version, change)


def _own_write(
    s: Session, db: Database, sku: str, version: int, change: Callable[[Session, Item], None]
) -> None:
    item = _lock_item(db, s, sku)
    if item.version < version:
        change(s, item)
        item.floor_version = max(item.floor_version, version)


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


def release(db: Database, sku: str, order_id: int, stock: RemoteStock | None = None) -> int:
    """``DELETE /api/inventory/{sku}/reservations/{order_id}``; returns the stock version."""
    if stock is not None:
        answer = stock.release(sku, order_id)
        apply_own_write(db, sku, answer.version, lambda s, _i: _unhold(s, sku, order_id))
        return answer.version
    with db.write() as s:
        item = _lock_item(db, s, sku)
        held = s.get(Reservation, (sku, order_id))
        if held is None:
            return item.version
        s.delete(held)
    return int(s.info[VERSIONS][sku])


def restock(
    db: Database, sku: str, qty: int, stock: RemoteStock | None = None
) -> tuple[dict[str, Any], int]:
    """``POST /api/inventory/{sku}/restock``: on_hand += qty; (200 item, stock version)."""
    if stock is not None:
        answer = stock.restock(sku, qty)
        on_hand = int(answer.body["on_hand"])

        def _set(_s: Session, item: Item) -> None:
            item.on_hand = on_hand

        apply_own_write(db, sku, answer.version, _set)
        return answer.body, answer.version
    with db.write() as s:
        item = _lock_item(db, s, sku)
        item.on_hand += qty
        s.flush()
        body = item_json(item, _reserved(s, [sku]).get(sku, 0))
    return body, int(s.info[VERSIONS][sku])


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


def cancel_order(db: Database, order_id: int, stock: RemoteStock | None = None) -> dict[str, Any]:
    """``POST /api/orders/{id}/cancel``: status cancelled, reservations released; idempotent.

    Any order can be cancelled here, whichever side placed it (status lattice: cancelled wins).
    With a remote authority it is a small saga: the intent is recorded (`cancel_requests`), then
    the lines are released there. If the authority certainly did nothing (refused connection,
    open breaker), 503 and nothing changes. If a release may have happened without an answer,
    503 and reconciliation finishes the cancel. A release that fails after others succeeded is
    queued (`stock_ops`) and the order cancelled now. So a placed order never ends without its
    stock, and a cancelled one never keeps it.
    """
    if stock is not None:
        return _cancel_remote(db, stock, order_id)
    with db.write() as s:
        order = _lock_order(db, s, order_id)
        if order.status != CANCELLED:
            order.status = CANCELLED
            order.origin = ORIGIN
            for held in s.scalars(select(Reservation).where(Reservation.order_id == order_id)):
                s.delete(held)
            s.flush()
        return _orders_json(s, [order])[0]


def _lock_order(db: Database, s: Session, order_id: int) -> Order:
    query = select(Order).where(Order.id == order_id)
    if db.is_postgres:
        query = query.with_for_update()
    order = s.scalar(query)
    if order is None:
        raise errors.order_not_found(order_id)
    return order


def _cancel_remote(db: Database, stock: RemoteStock, order_id: int) -> dict[str, Any]:
    with db.write() as s:
        order = _lock_order(db, s, order_id)
        if order.status == CANCELLED:
            return _orders_json(s, [order])[0]
        # The intent first: a release whose answer is lost may have happened at the authority.
        if s.get(CancelRequest, order_id) is None:
            s.add(CancelRequest(order_id=order_id, created_at=utcnow()))
        skus = [line.sku for line in _lines(s, order_id)]
    released: dict[str, int] = {}
    owed: list[str] = []
    for sku in skus:
        if owed:
            owed.append(sku)  # the authority just failed: queue the rest without waiting on it
            continue
        try:
            released[sku] = stock.release(sku, order_id).version
        except AuthorityUnavailable as exc:
            if released:
                owed.append(sku)
            elif exc.maybe_done:
                # Nothing known to be released, but maybe something was: reconciliation
                # releases every line again and then cancels (the request stays recorded).
                raise
            else:
                _drop_cancel_request(db, order_id)  # certainly nothing happened
                raise
        except errors.ShopError:
            _drop_cancel_request(db, order_id)
            raise
    return _finish_cancel(db, order_id, released, owed)


def _lines(s: Session, order_id: int) -> list[OrderLine]:
    query = select(OrderLine).where(OrderLine.order_id == order_id).order_by(OrderLine.line_no)
    return list(s.scalars(query))


def _drop_cancel_request(db: Database, order_id: int) -> None:
    with db.write() as s:
        s.execute(delete(CancelRequest).where(CancelRequest.order_id == order_id))


def _finish_cancel(
    db: Database, order_id: int, released: dict[str, int], owed: list[str]
) -> dict[str, Any]:
    """Cancel the order whose lines were released (`owed`: releases still to send)."""
    with db.write() as s:
        order = _lock_order(db, s, order_id)
        if order.status != CANCELLED:
            order.status = CANCELLED
            order.origin = ORIGIN
            for sku, version in released.items():
                _own_write(s, db, sku, version, _unholding(sku, order_id))
            s.add_all(StockOp(sku=sku, order_id=order_id, created_at=utcnow()) for sku in owed)
        s.execute(delete(CancelRequest).where(CancelRequest.order_id == order_id))
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


def _learned(key: str, body: Any, answer: bytes) -> dict[str, Any]:
    """What an order event carries of its Idempotency-Key, so the other side's table learns it."""
    return {"key": key, "request": body, "response": orjson.loads(answer)}


def place_order(
    db: Database, raw: bytes, key: str | None, stock: RemoteStock | None = None
) -> tuple[int, bytes]:
    """``POST /api/orders``: reserve stock and price the order.

    With an Idempotency-Key the key is checked before anything else: a stored key with an
    equal body replays the stored 201, with another body answers 422. Returns (status, body).
    Locally (the legacy is the stock authority) all of it is one transaction; with a remote
    authority it is a saga, see `_place_remote`.
    """
    if key is not None and len(key) > 255:
        raise errors.validation_error("Idempotency-Key", errors.KEY_TOO_LONG)
    if stock is not None:
        return _place_remote(db, stock, raw, key)
    if key is None:
        cmd, _ = parse_place_order(raw)
        with db.write() as s:
            return 201, dumps(_place(db, s, cmd))
    sent = _loose_json(raw)
    for attempt in range(_WRITE_ATTEMPTS):
        try:
            with db.write() as s:
                replay = _stored_answer(s, key, sent)
                if replay is not None:
                    return replay
                cmd, body = parse_place_order(raw)
                order = _place(db, s, cmd)
                answer = dumps(order)
                _store_key(s, key, body, answer)
                s.info.setdefault(IDEMPOTENCY, {})[order["id"]] = _learned(key, body, answer)
                s.flush()
                return 201, answer
        except IntegrityError:
            # A concurrent request stored the same key first; its transaction won, ours is
            # rolled back (nothing placed). Loop to replay its answer.
            if attempt == _WRITE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


# A pending order whose lines were all released: kept so that its id is never reused.
RELEASED = "released"
# A key whose first request is still being placed through the remote authority.
_IN_FLIGHT = 0
# How long a repeat waits for the first request with its key to finish before answering 409.
KEY_WAIT_S = 10.0


def _stored_answer(s: Session, key: str, sent: Any) -> tuple[int, bytes] | None:
    """Purge expired keys; the replay of `key`'s stored answer, or None when it is not stored.

    Raises 422 for another body, and `_KeyInFlight` while its first request is running.
    """
    s.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < utcnow() - IDEMPOTENCY_TTL))
    stored = s.get(IdempotencyKey, key)
    if stored is None:
        return None
    if sent is _UNPARSABLE or not json_equal(orjson.loads(stored.request_body), sent):
        raise errors.idempotency_key_reused()
    if stored.status_code == _IN_FLIGHT:
        raise _KeyInFlight()
    return stored.status_code, stored.response_body.encode()


class _KeyInFlight(Exception):
    """The first request with this Idempotency-Key has not finished yet."""


def _store_key(s: Session, key: str, body: Any, answer: bytes | None) -> None:
    s.add(
        IdempotencyKey(
            key=key,
            request_body=dumps(body).decode(),
            status_code=201 if answer is not None else _IN_FLIGHT,
            response_body=answer.decode() if answer is not None else "",
            created_at=utcnow(),
            origin=ORIGIN,
        )
    )


def _place_remote(
    db: Database, stock: RemoteStock, raw: bytes, key: str | None
) -> tuple[int, bytes]:
    """Place an order while the inventory service is the stock authority: a saga.

    1. One transaction: the Idempotency-Key check (and an in-flight claim of the key), the
       customer and sku checks, a legacy order id and a `pending_orders` row.
    2. Reserve each line at the authority with that id; the authority alone decides stock.
    3. One transaction: drop the pending row (only if reconciliation has not claimed it), store
       the order, its lines, the key's answer and the reservations in the read copy; the outbox
       hook adds `order.placed`.
    Any failure releases what was reserved; a crash leaves the pending row, which
    reconciliation releases (`reconcile`).
    """
    sent = _loose_json(raw) if key is not None else None
    deadline = time.monotonic() + KEY_WAIT_S
    while True:
        try:
            with db.write() as s:
                if key is not None:
                    replay = _stored_answer(s, key, sent)
                    if replay is not None:
                        return replay
                cmd, body = parse_place_order(raw)
                lines = _priced_lines(s, cmd)
                order_id = next_id(s, Order)
                payload = {"customer_id": cmd.customer_id, "lines": lines, "key": key}
                s.add(
                    PendingOrder(
                        order_id=order_id,
                        payload=dumps(payload).decode(),
                        state="pending",
                        created_at=utcnow(),
                    )
                )
                if key is not None:
                    _store_key(s, key, body, None)
            break
        except (_KeyInFlight, IntegrityError):
            # Another request holds the key: wait for its answer (bounded), then replay it.
            if time.monotonic() >= deadline:
                raise errors.ShopError(
                    409,
                    "idempotency_key_in_progress",
                    "a request with this Idempotency-Key is still in progress",
                ) from None
            time.sleep(0.05)
    versions: dict[str, int] = {}
    try:
        for line in lines:
            versions[line["sku"]] = stock.reserve(line["sku"], order_id, line["qty"]).version
    except errors.ShopError:
        abandon_pending(db, stock, order_id)
        raise
    with db.write() as s:
        # A bulk DELETE answers a CursorResult (Session.execute is typed for SELECTs).
        claimed = cast(
            "CursorResult[Any]",
            s.execute(
                delete(PendingOrder).where(
                    PendingOrder.order_id == order_id, PendingOrder.state == "pending"
                )
            ),
        )
        if claimed.rowcount == 1:
            order = _store_order(db, s, order_id, cmd.customer_id, lines, versions)
            answer = dumps(order)
            if key is not None:
                stored = s.get(IdempotencyKey, key)
                if stored is not None:
                    stored.status_code, stored.response_body = 201, answer.decode()
                s.info.setdefault(IDEMPOTENCY, {})[order_id] = _learned(key, body, answer)
            s.flush()
            return 201, answer
    # Reconciliation took the order while we were reserving: it releases every line.
    abandon_pending(db, stock, order_id)
    raise errors.dependency_unavailable("inventory")


def _priced_lines(s: Session, cmd: PlaceOrder) -> list[dict[str, Any]]:
    """Customer and sku checks (same order and texts as `_place`), lines with their prices."""
    if s.get(Customer, cmd.customer_id) is None:
        raise errors.unknown_customer(cmd.customer_id)
    skus = sorted(line.sku for line in cmd.lines)
    prices = dict(s.execute(select(Item.sku, Item.price_cents).where(Item.sku.in_(skus))).all())
    for line in cmd.lines:
        if line.sku not in prices:
            raise errors.unknown_sku(line.sku)
    return [
        {"sku": line.sku, "qty": line.qty, "price_cents": int(prices[line.sku])}
        for line in cmd.lines
    ]


def _store_order(
    db: Database,
    s: Session,
    order_id: int,
    customer_id: int,
    lines: list[dict[str, Any]],
    versions: dict[str, int],
) -> dict[str, Any]:
    rows = [
        OrderLine(
            order_id=order_id,
            sku=line["sku"],
            line_no=index,
            qty=line["qty"],
            price_cents=line["price_cents"],
            origin=ORIGIN,
        )
        for index, line in enumerate(lines)
    ]
    order = Order(
        id=order_id,
        customer_id=customer_id,
        status=PLACED,
        total_cents=sum(ln.qty * ln.price_cents for ln in rows),
        placed_at=utcnow(),
        origin=ORIGIN,
    )
    s.add(order)
    s.flush()
    s.add_all(rows)
    for line in rows:
        _own_write(s, db, line.sku, versions[line.sku], _holding(line.sku, order_id, line.qty))
    s.flush()
    return order_json(order, rows)


def abandon_pending(db: Database, stock: RemoteStock, order_id: int) -> bool:
    """Release every line of a pending order at the authority, then forget it and its key claim.

    Returns False (the row stays, state ``releasing``) when the authority could not be reached:
    reconciliation tries again. Releasing a line never reserved is a harmless no-op. The row is
    kept as ``released``, so its order id is never handed out again.
    """
    with db.write() as s:
        pending = s.get(PendingOrder, order_id)
        if pending is None or pending.state == RELEASED:
            return True
        pending.state = "releasing"
        payload = orjson.loads(pending.payload)
    try:
        for line in payload["lines"]:
            stock.release(line["sku"], order_id)
    except errors.ShopError:
        return False
    with db.write() as s:
        s.execute(
            update(PendingOrder).where(PendingOrder.order_id == order_id).values(state=RELEASED)
        )
        key = payload.get("key")
        if key is not None:
            s.execute(
                delete(IdempotencyKey).where(
                    IdempotencyKey.key == key, IdempotencyKey.status_code == _IN_FLIGHT
                )
            )
    return True


def reconcile(db: Database, stock: RemoteStock, *, grace: dt.timedelta) -> int:
    """Finish what crashed or failed requests left with a remote authority; returns how many.

    Pending orders older than `grace` are released and dropped; cancels left unfinished are
    released again and completed; queued releases of cancelled orders are sent; in-flight key
    claims without a pending order are dropped.
    """
    cutoff = utcnow() - grace
    with db.read() as s:
        stale = list(
            s.scalars(
                select(PendingOrder.order_id).where(
                    PendingOrder.created_at < cutoff, PendingOrder.state != RELEASED
                )
            )
        )
        owed = list(
            s.execute(select(StockOp.id, StockOp.sku, StockOp.order_id).order_by(StockOp.id))
        )
    with db.read() as s:
        cancels = list(
            s.scalars(select(CancelRequest.order_id).where(CancelRequest.created_at < cutoff))
        )
    done = sum(1 for order_id in stale if abandon_pending(db, stock, order_id))
    for order_id in cancels:
        with db.read() as s:
            skus = [line.sku for line in _lines(s, order_id)]
        try:
            released = {sku: stock.release(sku, order_id).version for sku in skus}
        except errors.ShopError:
            continue  # still away: the request stays, try again later
        _finish_cancel(db, order_id, released, [])
        done += 1
    for op_id, sku, order_id in owed:
        try:
            version = stock.release(sku, order_id).version
        except errors.ShopError:
            break  # the authority is still away: keep the queue, try again later
        with db.write() as s:
            _own_write(s, db, sku, version, _unholding(sku, order_id))
            s.execute(delete(StockOp).where(StockOp.id == op_id))
        done += 1
    with db.write() as s:
        pending_keys = select(PendingOrder.payload).where(PendingOrder.state != RELEASED)
        claimed = {orjson.loads(p).get("key") for p in s.scalars(pending_keys)}
        for row in s.scalars(
            select(IdempotencyKey).where(
                IdempotencyKey.status_code == _IN_FLIGHT, IdempotencyKey.created_at < cutoff
            )
        ):
            if row.key not in claimed:
                s.delete(row)
    return done
