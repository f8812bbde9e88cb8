"""The unit-of-work and repository ports (synchronous; the use cases run them in a thread)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Self

from extracted.orders.domain.events import OrderEvent
from extracted.orders.domain.idempotency import KeyRecord
from extracted.orders.domain.model import Order, OrderStatus, Origin


class KeyAlreadyStored(Exception):
    """Another request stored the same Idempotency-Key first (a lost race)."""


@dataclass(frozen=True)
class StoredAnswer:
    """The first 201 answer given for an Idempotency-Key, and the body it answered."""

    key: str
    request: Any  # parsed JSON of the request body
    response: dict[str, Any]  # the order JSON answered
    created_at: float
    order_id: int | None = None  # the order placed under the key

    def record(self) -> KeyRecord:
        """The key as events carry it."""
        return KeyRecord(self.key, self.request, self.response)


@dataclass(frozen=True)
class SyncProgress:
    """How far a backfill got: legacy orders read so far, and whether it finished."""

    cursor: int = 0
    complete: bool = False


class OrderRepository(Protocol):
    """Orders of this service's own database (every status, pending ones included)."""

    def next_id(self) -> int:
        """A fresh id >= NEW_SERVICES_ID_FLOOR, above every id this service allocated."""
        ...

    def add(self, order: Order) -> None:
        """Insert a new order with its lines."""
        ...

    def get(self, order_id: int) -> Order | None:
        """The order `order_id` in any status, or None."""
        ...

    def list_visible(
        self, customer_id: int | None, limit: int, offset: int
    ) -> tuple[list[Order], int]:
        """Placed/cancelled orders by id, one page of them and the total count."""
        ...

    def set_status(
        self, order_id: int, expected: Iterable[OrderStatus], status: OrderStatus, origin: Origin
    ) -> bool:
        """Move the order to `status` if it is in one of `expected`; False when it was not."""
        ...

    def stale(self, statuses: Iterable[OrderStatus], created_before: float) -> list[Order]:
        """Orders in `statuses` created before the epoch time `created_before`."""
        ...

    def visible(self) -> list[Order]:
        """Every placed/cancelled order, by id."""
        ...

    def ids_in(self, statuses: Iterable[OrderStatus]) -> set[int]:
        """Ids of the orders in `statuses`."""
        ...

    def merge(self, copies: Sequence[Order]) -> list[Order]:
        """Merge the other side's copies by the lattice, in order; returns what changed."""
        ...

    def request_cancel(self, order_id: int, at: float) -> None:
        """Record that a cancel of `order_id` started (kept if already recorded)."""
        ...

    def drop_cancel_request(self, order_id: int) -> None:
        """Forget the cancel request of `order_id` (done, or certainly nothing changed)."""
        ...

    def cancel_requests(self, before: float) -> list[int]:
        """Order ids of cancel requests recorded before the epoch time `before`."""
        ...


class SyncStateStore(Protocol):
    """Progress of resumable copy jobs, by name."""

    def get(self, name: str) -> SyncProgress:
        """The job's progress (zero when it never ran)."""
        ...

    def advance(self, name: str, cursor: int, complete: bool) -> None:
        """Record progress; never moves the cursor back nor un-completes (concurrent runs)."""
        ...

    def reset(self, name: str) -> None:
        """Start the job over."""
        ...


class IdempotencyStore(Protocol):
    """Idempotency-Keys and the first 201 answer stored for each."""

    def find(self, key: str) -> StoredAnswer | None:
        """The stored answer for `key`, or None."""
        ...

    def store(self, answer: StoredAnswer) -> None:
        """Store a key's answer; raises KeyAlreadyStored when the key is taken."""
        ...

    def purge(self, created_before: float) -> int:
        """Delete keys stored before the epoch time `created_before`; returns how many."""
        ...

    def learn(self, answer: StoredAnswer) -> bool:
        """Store a key the other side answered, unless the key is known; True if stored."""
        ...

    def for_order(self, order_id: int) -> StoredAnswer | None:
        """The key order `order_id` was placed under, or None."""
        ...


class UnitOfWork(Protocol):
    """One database transaction per `with uow:`; nothing is kept without `commit()`."""

    @property
    def orders(self) -> OrderRepository:
        """The orders of the open transaction."""
        ...

    @property
    def keys(self) -> IdempotencyStore:
        """The Idempotency-Keys of the open transaction."""
        ...

    @property
    def sync_state(self) -> SyncStateStore:
        """Backfill progress in the open transaction."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None: ...

    def commit(self) -> None:
        """Make the transaction's changes durable."""
        ...

    def rollback(self) -> None:
        """Discard the transaction's changes."""
        ...

    def publish(self, events: Sequence[OrderEvent]) -> None:
        """Write events to the outbox in the current transaction."""
        ...
