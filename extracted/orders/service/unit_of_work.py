"""The unit-of-work and repository ports (synchronous; the use cases run them in a thread)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Self

from extracted.orders.domain.events import OrderEvent
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


class OrderRepository(Protocol):
    """Orders of this service's own database (every status, pending ones included)."""

    def next_id(self) -> int:
        """A fresh id >= NEW_ID_BASE, above every id this service allocated."""
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

    def below(self, bound: int) -> dict[int, Order]:
        """Every order with an id below `bound` (the legacy's id range), by id."""
        ...

    def visible(self) -> list[Order]:
        """Every placed/cancelled order, by id."""
        ...

    def put(self, order: Order) -> None:
        """Insert or overwrite an order and its lines (sync from the legacy)."""
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
