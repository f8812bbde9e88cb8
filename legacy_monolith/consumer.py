"""`python -m legacy_monolith consume`: apply the new services' events to the legacy's tables.

Each event is applied in ONE transaction together with its `processed_events` row, so a
redelivered event (the bus delivers at least once) is recognised by its `event_id` and applied
exactly once; the bus entry is acked only after that transaction committed. Events the legacy
itself originated are skipped (no echo). An event that cannot be applied because of its content
is logged, acked and counted (poison), never retried forever; a database or bus outage is retried
with backoff, never a crash loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError, StatementError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from extracted.events import (
    INVENTORY_CHANGED,
    ORDER_CANCELLED,
    ORDER_PLACED,
    Delivery,
    Event,
    EventBus,
    bus_from_env,
)
from legacy_monolith.db import (
    TS_FORMAT,
    Database,
    Item,
    Order,
    OrderLine,
    ProcessedEvent,
    Reservation,
    database_url_from_env,
)

log = logging.getLogger("legacy_monolith.consumer")

DEFAULT_GROUP = "legacy"
_BACKOFF_START_S = 0.5
_BACKOFF_MAX_S = 10.0
# --once gives up (exit 1) after this many consecutive failures to reach the bus or database
_ONCE_MAX_FAILURES = 6

APPLIED = "applied"
DUPLICATE = "duplicate"
ECHO = "echo"
POISON = "poison"


@dataclass
class Stats:
    """What the consumer did, by outcome (printed as JSON by ``--once``)."""

    applied: int = 0
    duplicate: int = 0
    echo: int = 0
    poison: int = 0

    def count(self, outcome: str) -> None:
        """Add one event to the counter for `outcome`."""
        setattr(self, outcome, getattr(self, outcome) + 1)


# --- applying one event (pure SQLAlchemy, runs in a worker thread) ------------------------------


def _parse_ts(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, TS_FORMAT)


def _apply_order(session: Session, order: dict[str, Any], origin: str) -> None:
    """Upsert the order and replace its lines; a cancelled order never goes back to placed."""
    row = session.get(Order, order["id"])
    status = order["status"]
    if row is None:
        row = Order(id=order["id"])
        session.add(row)
    elif row.status == "cancelled":
        # a late redelivery of order.placed must not undo a cancellation already applied
        status = "cancelled"
    row.customer_id = order["customer_id"]
    row.status = status
    row.total_cents = order["total_cents"]
    row.placed_at = _parse_ts(order["placed_at"])
    row.origin = origin
    session.flush()
    session.execute(delete(OrderLine).where(OrderLine.order_id == order["id"]))
    for line_no, line in enumerate(order["items"]):
        session.add(
            OrderLine(
                order_id=order["id"],
                sku=line["sku"],
                line_no=line_no,
                qty=line["qty"],
                price_cents=line["price_cents"],
                origin=origin,
            )
        )


def _apply_inventory(session: Session, data: dict[str, Any], origin: str) -> None:
    """Set the item's stored fields and make its reservations exactly the event's list."""
    item = data["item"]
    sku = item["sku"]
    row = session.get(Item, sku)
    if row is None:
        row = Item(sku=sku)
        session.add(row)
    row.name = item["name"]
    row.price_cents = item["price_cents"]
    row.on_hand = item["on_hand"]
    row.origin = origin
    session.flush()
    wanted = {r["order_id"]: r["qty"] for r in data["reservations"]}
    existing = {
        r.order_id: r for r in session.scalars(select(Reservation).where(Reservation.sku == sku))
    }
    for order_id, res in existing.items():
        if order_id not in wanted:
            session.delete(res)
        elif res.qty != wanted[order_id] or res.origin != origin:
            # update in place so a kept reservation keeps its created_at
            res.qty = wanted[order_id]
            res.origin = origin
    for order_id, qty in wanted.items():
        if order_id not in existing:
            session.add(Reservation(sku=sku, order_id=order_id, qty=qty, origin=origin))


def apply_event(db: Database, event: Event) -> str:
    """Apply `event` to the legacy database once; returns the outcome (applied/duplicate/echo).

    Raises OperationalError when the database fails (retry later), and KeyError/TypeError/
    ValueError or another StatementError when the event's content cannot be applied (poison).
    """
    if event.origin == "legacy":
        return ECHO
    try:
        with db.write() as session:
            if session.get(ProcessedEvent, event.event_id) is not None:
                return DUPLICATE
            if event.type in (ORDER_PLACED, ORDER_CANCELLED):
                _apply_order(session, event.data["order"], event.origin)
            elif event.type == INVENTORY_CHANGED:
                _apply_inventory(session, event.data, event.origin)
            else:
                raise ValueError(f"no handler for event type {event.type!r}")
            session.add(ProcessedEvent(event_id=event.event_id, origin=event.origin))
    except IntegrityError as exc:
        # another consumer applied the same event concurrently: its processed_events row won
        with db.read() as session:
            if session.get(ProcessedEvent, event.event_id) is not None:
                return DUPLICATE
        raise ValueError(f"event violates a constraint: {exc.orig}") from exc
    return APPLIED


# --- the consume loop -----------------------------------------------------------------------------


class Consumer:
    """Reads deliveries for one consumer of one group and applies them, acking after commit."""

    def __init__(self, db: Database, bus: EventBus, group: str, consumer: str) -> None:
        self.db = db
        self.bus = bus
        self.group = group
        self.consumer = consumer
        self.stats = Stats()
        self.stopping = asyncio.Event()

    async def _sleep(self, seconds: float) -> None:
        """Sleep, waking early on stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    async def process(self, deliveries: list[Delivery]) -> None:
        """Apply each delivery in order and ack them; a database outage is retried in place."""
        done: list[str] = []
        try:
            for delivery in deliveries:
                outcome = await self._process_one(delivery)
                if outcome is None:  # stopping while the database was down: leave it pending
                    return
                self.stats.count(outcome)
                done.append(delivery.id)
        finally:
            if done:
                await self.bus.ack(self.group, done)

    async def _process_one(self, delivery: Delivery) -> str | None:
        backoff = _BACKOFF_START_S
        while True:
            try:
                outcome = await asyncio.to_thread(apply_event, self.db, delivery.event)
            except (OperationalError, InterfaceError, PoolTimeout) as exc:
                # an outage: retry the same event; data errors (DataError, ...) are poison below
                if self.stopping.is_set():
                    return None
                log.warning(
                    "database error applying %s (%s); retrying in %.1fs",
                    delivery.event.event_id,
                    getattr(exc, "orig", exc),
                    backoff,
                )
                await self._sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX_S)
                continue
            except (KeyError, TypeError, ValueError, StatementError) as exc:
                log.error(
                    "poison event %s (%s) of type %s: %r; acking it",
                    delivery.event.event_id,
                    delivery.id,
                    delivery.event.type,
                    exc,
                )
                return POISON
            except Exception:
                # a bug, not an outage: retrying would stall the stream behind this one event
                log.exception("cannot apply event %s; acking it as poison", delivery.event.event_id)
                return POISON
            if outcome == APPLIED:
                log.info("applied %s %s", delivery.event.type, delivery.event.event_id)
            return outcome

    async def run(self, *, once: bool = False, block_ms: int = 1000) -> int:
        """Consume until stopped (or, with `once`, until nothing is left); returns an exit code."""
        backoff = _BACKOFF_START_S
        failures = 0
        while not self.stopping.is_set():
            poison_before = _poison_count(self.bus)
            try:
                await asyncio.to_thread(self.db.ensure_schema)
                deliveries = await self.bus.read(
                    self.group, self.consumer, block_ms=200 if once else block_ms
                )
                if deliveries:
                    # an ack lost here only means a redelivery, which the dedupe absorbs
                    await self.process(deliveries)
            except Exception as exc:
                failures += 1
                if once and failures >= _ONCE_MAX_FAILURES:
                    log.error("giving up after %d failures: %s", failures, exc)
                    return 1
                log.warning(
                    "event bus or database unavailable (%s); retrying in %.1fs", exc, backoff
                )
                await self._sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX_S)
                continue
            failures, backoff = 0, _BACKOFF_START_S
            if once and not deliveries and _poison_count(self.bus) == poison_before:
                # an empty read that skipped poison entries does not mean the stream is drained
                return 0
        return 0


def _poison_count(bus: EventBus) -> int:
    """Entries the bus skipped as unparseable (both adapters count them)."""
    return int(getattr(bus, "poison_count", 0))


# --- CLI ----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``python -m legacy_monolith consume``."""
    parser = argparse.ArgumentParser(
        prog="python -m legacy_monolith consume",
        description="Apply order/inventory events from the event bus to the legacy database.",
    )
    parser.add_argument("--group", default=DEFAULT_GROUP, help="consumer group (default: legacy)")
    parser.add_argument(
        "--consumer",
        default=f"{socket.gethostname()}-{os.getpid()}",
        help="consumer name within the group (default: <hostname>-<pid>)",
    )
    parser.add_argument(
        "--once", action="store_true", help="process what is waiting, print counts as JSON, exit"
    )
    return parser


async def _amain(args: argparse.Namespace) -> int:
    db = Database(database_url_from_env())
    bus = bus_from_env()
    consumer = Consumer(db, bus, args.group, args.consumer)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, consumer.stopping.set)
    log.info("consuming as %s in group %s", args.consumer, args.group)
    try:
        code = await consumer.run(once=args.once)
    finally:
        await bus.close()
        db.dispose()
    consumer.stats.poison += _poison_count(bus)
    if args.once:
        sys.stdout.write(orjson.dumps(asdict(consumer.stats)).decode() + "\n")
    log.info("consumer stopped: %s", asdict(consumer.stats))
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m legacy_monolith consume [--group] [--consumer] [--once]``."""
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=os.environ.get("LOG_LEVEL", "INFO"),
            format="%(asctime)s %(levelname)s %(name)s %(message)s",
            stream=sys.stderr,
        )
    return asyncio.run(_amain(args))


if __name__ == "__main__":
    raise SystemExit(main())
