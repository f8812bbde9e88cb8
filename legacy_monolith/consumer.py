"""`python -m legacy_monolith consume`: the legacy's background worker (SPEC §3).

It does three jobs, each surviving outages of the bus, the database or the stock authority:

* **consume** the new services' events (consumer group ``legacy``) and apply them to the legacy's
  tables in one transaction each, acking only after the commit (at least once, applied once):
  orders by the status lattice (missing -> inserted with their immutable lines; ``cancelled``
  wins, never undone), their Idempotency-Keys learned; `inventory.changed` from the stock
  authority only if its `aggregate_version` is newer than the read copy's (and not older than
  a write the legacy made there itself). Redelivery, reordering, a restart or a takeover of a
  dead consumer's pending entries therefore never regress a record. Events the legacy wrote
  are skipped (no echo); applied changes are never re-published.
* **relay** the legacy's own outbox to the bus (`OutboxRelay`).
* **reconcile** what crashed requests left at a remote stock authority (`shop.reconcile`).

An event that is valid on the wire but cannot be applied (the database refuses it) is parked:
logged, counted and left unacked, never applied halfway and never dropped.
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
from sqlalchemy import select
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
    OutboxRelay,
    bus_from_env,
)
from extracted.stock_authority import Authority, stock_authority
from legacy_monolith.db import (
    TS_FORMAT,
    Database,
    IdempotencyKey,
    Item,
    Order,
    OrderLine,
    Reservation,
    database_url_from_env,
    outbox,
    utcnow,
)
from legacy_monolith.outbox import APPLYING

log = logging.getLogger("legacy_monolith.consumer")

DEFAULT_GROUP = "legacy"
_BACKOFF_START_S = 0.5
_BACKOFF_MAX_S = 10.0
# --once gives up (exit 1) after this many consecutive failures to reach the bus or database
_ONCE_MAX_FAILURES = 6
# A pending order older than this belongs to a crashed or failed request (remote authority).
PENDING_GRACE = dt.timedelta(seconds=float(os.environ.get("LEGACY_PENDING_GRACE", "30")))
RECONCILE_EVERY_S = 5.0

APPLIED = "applied"
STALE = "stale"  # nothing newer than what the legacy holds: a redelivery or an old version
ECHO = "echo"
IGNORED = "ignored"
PARKED = "parked"


@dataclass
class Stats:
    """What the consumer did, by outcome (printed as JSON by ``--once``)."""

    applied: int = 0
    stale: int = 0
    echo: int = 0
    ignored: int = 0
    parked: int = 0

    def count(self, outcome: str) -> None:
        """Add one event to the counter for `outcome`."""
        setattr(self, outcome, getattr(self, outcome) + 1)


# --- applying one event (pure SQLAlchemy, runs in a worker thread) ------------------------------


def _parse_ts(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, TS_FORMAT)


def _apply_order(session: Session, order: dict[str, Any], origin: str) -> bool:
    """Merge an order by the lattice: insert it if missing; ``cancelled`` wins. True if changed."""
    row = session.get(Order, order["id"])
    if row is None:
        session.add(
            Order(
                id=order["id"],
                customer_id=order["customer_id"],
                status=order["status"],
                total_cents=order["total_cents"],
                placed_at=_parse_ts(order["placed_at"]),
                origin=origin,
            )
        )
        session.flush()
        session.add_all(
            OrderLine(
                order_id=order["id"],
                sku=line["sku"],
                line_no=line_no,
                qty=line["qty"],
                price_cents=line["price_cents"],
                origin=origin,
            )
            for line_no, line in enumerate(order["items"])
        )
        return True
    if order["status"] == "cancelled" and row.status != "cancelled":
        row.status = "cancelled"
        row.origin = origin
        return True
    return False  # items are immutable and placed never undoes cancelled


def _learn_key(session: Session, idem: dict[str, Any] | None) -> None:
    """Store the other side's Idempotency-Key answer, so a repeat here replays it (I4)."""
    if not idem or session.get(IdempotencyKey, idem["key"]) is not None:
        return
    session.add(
        IdempotencyKey(
            key=idem["key"],
            request_body=orjson.dumps(idem["request"]).decode(),
            status_code=201,
            response_body=orjson.dumps(idem["response"]).decode(),
            created_at=utcnow(),
            origin="orders",
        )
    )


def _apply_inventory(session: Session, event: Event) -> bool:
    """Replace the read copy of one item with the authority's newer record. True if applied."""
    item = event.data["item"]
    sku = item["sku"]
    version = event.aggregate_version
    row = session.get(Item, sku)
    if row is None:
        row = Item(sku=sku, version=0, floor_version=0)
        session.add(row)
    elif version <= row.version or version < row.floor_version:
        return False
    row.name = item["name"]
    row.price_cents = item["price_cents"]
    row.on_hand = item["on_hand"]
    row.version = version
    row.origin = event.origin
    session.flush()
    wanted = {r["order_id"]: r["qty"] for r in event.data["reservations"]}
    existing = {
        r.order_id: r for r in session.scalars(select(Reservation).where(Reservation.sku == sku))
    }
    for order_id, res in existing.items():
        if order_id not in wanted:
            session.delete(res)
        elif res.qty != wanted[order_id]:
            res.qty = wanted[order_id]
            res.origin = event.origin
    for order_id, qty in wanted.items():
        if order_id not in existing:
            session.add(Reservation(sku=sku, order_id=order_id, qty=qty, origin=event.origin))
    return True


def apply_event(db: Database, event: Event, authority: Authority = "legacy") -> str:
    """Apply `event` to the legacy database; returns the outcome (applied/stale/echo/ignored).

    Raises OperationalError when the database fails (retry later), and ValueError or a
    StatementError when the database refuses the event's content (parked).
    """
    if event.origin == "legacy":
        return ECHO
    if event.type == INVENTORY_CHANGED and authority == "legacy":
        # Only the authority publishes stock; another writer's copy must never replace ours.
        log.warning(
            "ignoring %s from %s: the legacy is the stock authority", event.type, event.origin
        )
        return IGNORED
    try:
        with db.write() as session:
            session.info[APPLYING] = event.origin
            if event.type in (ORDER_PLACED, ORDER_CANCELLED):
                changed = _apply_order(session, event.data["order"], event.origin)
                _learn_key(session, event.data.get("idempotency"))
            elif event.type == INVENTORY_CHANGED:
                changed = _apply_inventory(session, event)
            else:
                return IGNORED
    except IntegrityError as exc:
        raise ValueError(f"event violates a constraint: {exc.orig}") from exc
    return APPLIED if changed else STALE


# --- the consume loop -----------------------------------------------------------------------------


class Consumer:
    """Reads deliveries for one consumer of one group and applies them, acking after commit."""

    def __init__(
        self,
        db: Database,
        bus: EventBus,
        group: str,
        consumer: str,
        authority: Authority = "legacy",
    ) -> None:
        self.db = db
        self.bus = bus
        self.group = group
        self.consumer = consumer
        self.authority = authority
        self.stats = Stats()
        self.stopping = asyncio.Event()

    async def _sleep(self, seconds: float) -> None:
        """Sleep, waking early on stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    async def process(self, deliveries: list[Delivery]) -> None:
        """Apply each delivery in order and ack the applied ones; parked ones stay pending."""
        done: list[str] = []
        try:
            for delivery in deliveries:
                outcome = await self._process_one(delivery)
                if outcome is None:  # stopping while the database was down: leave it pending
                    return
                self.stats.count(outcome)
                if outcome != PARKED:
                    done.append(delivery.id)
        finally:
            if done:
                await self.bus.ack(self.group, done)

    async def _process_one(self, delivery: Delivery) -> str | None:
        backoff = _BACKOFF_START_S
        event = delivery.event
        conflicts = 0
        while True:
            try:
                outcome = await asyncio.to_thread(apply_event, self.db, event, self.authority)
            except (OperationalError, InterfaceError, PoolTimeout) as exc:
                # an outage: retry the same event; data errors (DataError, ...) are parked below
                if self.stopping.is_set():
                    return None
                log.warning(
                    "database error applying %s (%s); retrying in %.1fs",
                    event.event_id,
                    getattr(exc, "orig", exc),
                    backoff,
                )
                await self._sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX_S)
                continue
            except ValueError as exc:
                # most often another consumer inserted the same order a moment ago: try again,
                # the lattice then finds it there
                conflicts += 1
                if conflicts < 3 and "constraint" in str(exc):
                    continue
                return self._park(delivery, exc)
            except (KeyError, TypeError, StatementError) as exc:
                return self._park(delivery, exc)
            except Exception as exc:
                # a bug, not an outage: park it rather than stall the stream behind one event
                log.exception("cannot apply event %s", event.event_id)
                return self._park(delivery, exc)
            if outcome == APPLIED:
                log.info("applied %s %s", event.type, event.event_id)
            return outcome

    def _park(self, delivery: Delivery, exc: BaseException) -> str:
        log.error(
            "parked event %s (%s) of type %s, left unacked: %r",
            delivery.event.event_id,
            delivery.id,
            delivery.event.type,
            exc,
        )
        return PARKED

    async def run(self, *, once: bool = False, block_ms: int = 1000) -> int:
        """Consume until stopped (or, with `once`, until nothing is left); returns an exit code."""
        backoff = _BACKOFF_START_S
        failures = 0
        while not self.stopping.is_set():
            parked_before = _parked_count(self.bus)
            try:
                await asyncio.to_thread(self.db.ensure_schema)
                deliveries = await self.bus.read(
                    self.group, self.consumer, block_ms=200 if once else block_ms
                )
                if deliveries:
                    # an ack lost here only means a redelivery, which the merge rules absorb
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
            if once and not deliveries and _parked_count(self.bus) == parked_before:
                # an empty read that parked entries does not mean the stream is drained
                return 0
        return 0


def _parked_count(bus: EventBus) -> int:
    """Entries the bus parked as unparseable or of an unknown schema version."""
    return int(getattr(bus, "parked_count", 0))


async def _reconcile_forever(db: Database, stopping: asyncio.Event) -> None:
    """With a remote stock authority: release what crashed requests left behind, every few s."""
    from legacy_monolith.shop import reconcile
    from legacy_monolith.stock import remote_stock_from_env

    stock = remote_stock_from_env()
    try:
        while not stopping.is_set():
            try:
                done = await asyncio.to_thread(reconcile, db, stock, grace=PENDING_GRACE)
                if done:
                    log.info("reconciled %d pending order(s) or owed release(s)", done)
            except Exception as exc:
                log.warning("reconciliation failed (%s); retrying later", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), RECONCILE_EVERY_S)
    finally:
        stock.close()


# --- CLI ----------------------------------------------------------------------------------------


async def _relay(db: Database, bus: EventBus) -> None:
    """Publish the legacy's outbox rows, in order, at least once (until cancelled)."""
    await asyncio.to_thread(db.ensure_schema)
    await OutboxRelay(db.engine, outbox, bus).run()


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``python -m legacy_monolith consume``."""
    parser = argparse.ArgumentParser(
        prog="python -m legacy_monolith consume",
        description=(
            "Apply the new services' events to the legacy database, relay the legacy's outbox "
            "to the event bus, and reconcile orders left pending at a remote stock authority."
        ),
    )
    parser.add_argument("--group", default=DEFAULT_GROUP, help="consumer group (default: legacy)")
    parser.add_argument(
        "--consumer",
        default=f"{socket.gethostname()}-{os.getpid()}",
        help="consumer name within the group (default: <hostname>-<pid>)",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="apply what is waiting (no relay, no reconciliation), print counts as JSON, exit",
    )
    return parser


async def _amain(args: argparse.Namespace) -> int:
    authority = stock_authority()
    db = Database(database_url_from_env())
    bus = bus_from_env()
    consumer = Consumer(db, bus, args.group, args.consumer, authority)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, consumer.stopping.set)
    log.info(
        "consuming as %s in group %s (stock authority: %s)", args.consumer, args.group, authority
    )
    tasks: list[asyncio.Task[None]] = []
    relay_bus = None
    if not args.once:
        # The relay gets its own bus connection: a blocking read must not delay a publish.
        relay_bus = bus_from_env()
        tasks.append(asyncio.create_task(_relay(db, relay_bus)))
        if authority == "inventory":
            tasks.append(asyncio.create_task(_reconcile_forever(db, consumer.stopping)))
    try:
        code = await consumer.run(once=args.once)
    finally:
        consumer.stopping.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if relay_bus is not None:
            await relay_bus.close()
        await bus.close()
        db.dispose()
    consumer.stats.parked += _parked_count(bus)
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
