"""In-memory fakes of the orders ports: a unit of work, inventory and customers."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Self

from extracted.contract.shapes import NEW_SERVICES_ID_FLOOR
from extracted.orders.domain.errors import (
    DependencyUnavailable,
    InsufficientStock,
    ReservationConflict,
    UnknownSku,
)
from extracted.orders.domain.events import OrderEvent
from extracted.orders.domain.lattice import merged
from extracted.orders.domain.model import (
    VISIBLE_STATUSES,
    Order,
    OrderStatus,
    Origin,
)
from extracted.orders.service.ports import ItemInfo, OrdersPage
from extracted.orders.service.unit_of_work import KeyAlreadyStored, StoredAnswer, SyncProgress


@dataclass
class Tables:
    """The fake database: committed state."""

    orders: dict[int, Order] = field(default_factory=dict)
    keys: dict[str, StoredAnswer] = field(default_factory=dict)
    outbox: list[OrderEvent] = field(default_factory=list)
    cancel_requests: dict[int, float] = field(default_factory=dict)
    sync_state: dict[str, SyncProgress] = field(default_factory=dict)


class FakeRepository:
    def __init__(self, t: Tables) -> None:
        self.t = t

    def next_id(self) -> int:
        mine = [i for i in self.t.orders if i >= NEW_SERVICES_ID_FLOOR]
        return max(mine) + 1 if mine else NEW_SERVICES_ID_FLOOR

    def add(self, order: Order) -> None:
        assert order.id not in self.t.orders
        self.t.orders[order.id] = order

    def get(self, order_id: int) -> Order | None:
        return self.t.orders.get(order_id)

    def list_visible(
        self, customer_id: int | None, limit: int, offset: int
    ) -> tuple[list[Order], int]:
        found = [
            o
            for _, o in sorted(self.t.orders.items())
            if o.visible and (customer_id is None or o.customer_id == customer_id)
        ]
        return found[offset : offset + limit], len(found)

    def set_status(
        self, order_id: int, expected: Iterable[OrderStatus], status: OrderStatus, origin: Origin
    ) -> bool:
        order = self.t.orders.get(order_id)
        if order is None or order.status not in list(expected):
            return False
        self.t.orders[order_id] = replace(order, status=status, origin=origin)
        return True

    def stale(self, statuses: Iterable[OrderStatus], created_before: float) -> list[Order]:
        wanted = list(statuses)
        return [
            o
            for _, o in sorted(self.t.orders.items())
            if o.status in wanted and o.created_at < created_before
        ]

    def visible(self) -> list[Order]:
        return [o for _, o in sorted(self.t.orders.items()) if o.status in VISIBLE_STATUSES]

    def ids_in(self, statuses: Iterable[OrderStatus]) -> set[int]:
        wanted = list(statuses)
        return {i for i, o in self.t.orders.items() if o.status in wanted}

    def merge(self, copies: Sequence[Order]) -> list[Order]:
        changed = []
        for theirs in copies:
            after = merged(self.t.orders.get(theirs.id), theirs)
            if after is not None:
                self.t.orders[theirs.id] = after
                changed.append(after)
        return changed

    def request_cancel(self, order_id: int, at: float) -> None:
        self.t.cancel_requests.setdefault(order_id, at)

    def drop_cancel_request(self, order_id: int) -> None:
        self.t.cancel_requests.pop(order_id, None)

    def cancel_requests(self, before: float) -> list[int]:
        return sorted(i for i, at in self.t.cancel_requests.items() if at < before)


class FakeKeys:
    def __init__(self, t: Tables) -> None:
        self.t = t

    def find(self, key: str) -> StoredAnswer | None:
        return self.t.keys.get(key)

    def store(self, answer: StoredAnswer) -> None:
        if answer.key in self.t.keys:
            raise KeyAlreadyStored(answer.key)
        self.t.keys[answer.key] = answer

    def purge(self, created_before: float) -> int:
        old = [k for k, a in self.t.keys.items() if a.created_at < created_before]
        for k in old:
            del self.t.keys[k]
        return len(old)

    def learn(self, answer: StoredAnswer) -> bool:
        if answer.key in self.t.keys:
            return False
        self.t.keys[answer.key] = answer
        return True

    def for_order(self, order_id: int) -> StoredAnswer | None:
        return next((a for a in self.t.keys.values() if a.order_id == order_id), None)


class FakeSyncState:
    def __init__(self, t: Tables) -> None:
        self.t = t

    def get(self, name: str) -> SyncProgress:
        return self.t.sync_state.get(name, SyncProgress())

    def advance(self, name: str, cursor: int, complete: bool) -> None:
        now = self.get(name)
        self.t.sync_state[name] = SyncProgress(max(now.cursor, cursor), now.complete or complete)

    def reset(self, name: str) -> None:
        self.t.sync_state.pop(name, None)


class FakeUnitOfWork:
    """Transactions over a shared `Tables`: a snapshot per `with`, kept only on commit."""

    def __init__(self, db: Tables, lock: threading.RLock) -> None:
        self.db = db
        self.lock = lock
        self.commits = 0

    def __enter__(self) -> Self:
        self.lock.acquire()  # serialised, like SQLite's BEGIN IMMEDIATE
        self._work = copy.deepcopy(self.db)
        self._views()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.lock.release()

    def _views(self) -> None:
        self.orders = FakeRepository(self._work)
        self.keys = FakeKeys(self._work)
        self.sync_state = FakeSyncState(self._work)

    def commit(self) -> None:
        for name in ("orders", "keys", "outbox", "cancel_requests", "sync_state"):
            setattr(self.db, name, getattr(self._work, name))
        self._work = copy.deepcopy(self.db)
        self._views()
        self.commits += 1

    def rollback(self) -> None:
        self._work = copy.deepcopy(self.db)
        self._views()

    def publish(self, events: Sequence[OrderEvent]) -> None:
        self._work.outbox.extend(events)


class FakeDatabase:
    """A shared in-memory database; `uow()` makes a unit of work on it."""

    def __init__(self) -> None:
        self.tables = Tables()
        self.lock = threading.RLock()

    def uow(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self.tables, self.lock)


@dataclass
class FakeItem:
    price_cents: int
    on_hand: int


class FakeInventory:
    """Inventory in memory with the real service's rules; `fail_*` inject faults."""

    def __init__(self, items: dict[str, FakeItem]) -> None:
        self.items = items
        self.reservations: dict[tuple[str, int], int] = {}
        self.calls: list[tuple[str, str]] = []
        self.down = False  # every call raises DependencyUnavailable
        self.fail_reserve_of: set[str] = set()  # these skus refuse with insufficient stock
        self.die_after_reserves: int | None = None  # go down after this many reservations
        self.time_out_after_releases: int | None = None  # then releases time out (maybe done)

    def reserved(self, sku: str) -> int:
        return sum(q for (s, _), q in self.reservations.items() if s == sku)

    def _check_up(self) -> None:
        if self.down:  # like a refused connection: the request never got there
            raise DependencyUnavailable("inventory", maybe_done=False)

    async def item(self, sku: str) -> ItemInfo | None:
        self.calls.append(("item", sku))
        self._check_up()
        it = self.items.get(sku)
        if it is None:
            return None
        return ItemInfo(sku, it.price_cents, it.on_hand - self.reserved(sku))

    async def reserve(self, sku: str, order_id: int, qty: int) -> None:
        self.calls.append(("reserve", sku))
        self._check_up()
        if sku not in self.items:
            raise UnknownSku(sku)
        held = self.reservations.get((sku, order_id))
        if held is not None:
            if held != qty:
                raise ReservationConflict(sku, order_id)
            return
        if sku in self.fail_reserve_of or self.items[sku].on_hand - self.reserved(sku) < qty:
            raise InsufficientStock(sku, qty)
        self.reservations[(sku, order_id)] = qty
        if self.die_after_reserves is not None:
            self.die_after_reserves -= 1
            if self.die_after_reserves <= 0:
                self.down = True

    async def release(self, sku: str, order_id: int) -> None:
        self.calls.append(("release", sku))
        self._check_up()
        if self.time_out_after_releases is not None:
            if self.time_out_after_releases <= 0:
                raise DependencyUnavailable("inventory")  # a timeout: it may have happened
            self.time_out_after_releases -= 1
        self.reservations.pop((sku, order_id), None)


class FakeCustomers:
    def __init__(self, ids: Iterable[int] = (1, 2, 3)) -> None:
        self.ids = set(ids)
        self.down = False

    async def exists(self, customer_id: int) -> bool:
        if self.down:
            raise DependencyUnavailable("customers")
        return customer_id in self.ids


class FakeLegacyOrders:
    """The legacy's orders in memory (LegacyOrdersPort); `down` fails like an unreachable one."""

    def __init__(self, orders: Iterable[Order] = ()) -> None:
        self.orders = {o.id: o for o in orders}
        self.down = False
        self.calls: list[tuple[str, int]] = []

    def _check_up(self) -> None:
        if self.down:
            raise DependencyUnavailable("legacy", maybe_done=False)

    async def page(self, offset: int, limit: int) -> OrdersPage:
        self.calls.append(("page", offset))
        self._check_up()
        ordered = [o for _, o in sorted(self.orders.items())]
        return OrdersPage(ordered[offset : offset + limit], len(ordered))

    async def get(self, order_id: int) -> Order | None:
        self.calls.append(("get", order_id))
        self._check_up()
        return self.orders.get(order_id)
