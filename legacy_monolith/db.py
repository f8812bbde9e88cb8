"""The legacy's one database: URL handling, engine, tables (ORM models) and sessions.

Every table carries an ``origin`` column ("legacy", "orders" or "inventory"): who wrote the
row, so that sync and the event consumer never echo each other's writes (SPEC §3).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from extracted.events import outbox_table

__all__ = [
    "DEFAULT_DATABASE_URL",
    "ID_CEILING",
    "ORIGIN",
    "Base",
    "CancelRequest",
    "Customer",
    "Database",
    "IdempotencyKey",
    "Item",
    "Order",
    "OrderLine",
    "PendingOrder",
    "Reservation",
    "StockOp",
    "outbox",
    "TS_FORMAT",
    "create_schema",
    "database_url_from_env",
    "format_ts",
    "make_engine",
    "next_id",
    "normalise_url",
    "utcnow",
]

DEFAULT_DATABASE_URL = "sqlite:///var/legacy.db"
# The legacy allocates ids below this bound; the extracted services allocate from it up.
ID_CEILING = 1_000_000_000
# What this process writes into every `origin` column.
ORIGIN = "legacy"
TS_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# Keys for pg_advisory_xact_lock: serialise id allocation and schema creation per purpose.
_PG_LOCK_SCHEMA = 0x1E6AC1
_PG_LOCK_IDS = {"customers": 0x1E6AC2, "orders": 0x1E6AC3}


def utcnow() -> dt.datetime:
    """Now, as a naive UTC datetime at second precision (how every timestamp is stored)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


def format_ts(value: dt.datetime) -> str:
    """Render a stored (naive UTC) timestamp as the contract's ``YYYY-MM-DDTHH:MM:SSZ``."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.strftime(TS_FORMAT)


def database_url_from_env() -> str:
    """``LEGACY_DATABASE_URL`` when set, else the embedded SQLite file under ``var/``."""
    return os.environ.get("LEGACY_DATABASE_URL") or DEFAULT_DATABASE_URL


def normalise_url(url: str) -> str:
    """Point ``postgresql://`` / ``postgres://`` URLs at psycopg 3 (psycopg2 is not installed)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Base(DeclarativeBase):
    """Declarative base of every legacy table."""


def _origin() -> Mapped[str]:
    return mapped_column(String(16), nullable=False, default=ORIGIN)


class Customer(Base):
    """A shop customer (stays in the monolith)."""

    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    email: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    origin: Mapped[str] = _origin()


class Item(Base):
    """An inventory item; its ``reserved`` is the sum of its reservations, never stored."""

    __tablename__ = "items"
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    price_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    on_hand: Mapped[int] = mapped_column(BigInteger, nullable=False)
    origin: Mapped[str] = _origin()
    # The stock authority's per-item version this copy holds (SPEC §3): bumped by the outbox hook
    # when the legacy is the authority; the version of the last applied event when it is not.
    version: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    # Read-your-writes on a read copy: a write the legacy made through the authority answered
    # this version; events older than it are ignored (they do not show that write yet).
    floor_version: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class Reservation(Base):
    """Stock held for one order on one sku (order_id need not be a legacy order)."""

    __tablename__ = "reservations"
    sku: Mapped[str] = mapped_column(
        String(64), ForeignKey("items.sku", ondelete="CASCADE"), primary_key=True
    )
    order_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    qty: Mapped[int] = mapped_column(BigInteger, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    origin: Mapped[str] = _origin()

    __table_args__ = (Index("ix_reservations_order_id", "order_id"),)


class Order(Base):
    """An order; ``total_cents`` is fixed when it is placed."""

    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # No foreign key: orders copied in by events may arrive before anything else.
    customer_id: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    total_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    placed_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    origin: Mapped[str] = _origin()


class OrderLine(Base):
    """One line of an order, priced at the item's price when the order was placed."""

    __tablename__ = "order_lines"
    order_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True
    )
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Position in the request, so lines come back in the order they were sent.
    line_no: Mapped[int] = mapped_column(Integer, nullable=False)
    qty: Mapped[int] = mapped_column(BigInteger, nullable=False)
    price_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    origin: Mapped[str] = _origin()


class IdempotencyKey(Base):
    """A stored 201 answer to ``POST /api/orders`` with an ``Idempotency-Key``."""

    __tablename__ = "idempotency_keys"
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_body: Mapped[str] = mapped_column(Text, nullable=False)
    status_code: Mapped[int] = mapped_column(Integer, nullable=False)
    response_body: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, index=True)
    origin: Mapped[str] = _origin()


class PendingOrder(Base):
    """An order being placed through a remote stock authority (the saga's first step).

    Written before any reservation is made, deleted in the transaction that stores the order:
    a row older than the grace period belongs to a crashed or failed request, and
    reconciliation releases its lines (``state`` ``pending`` -> ``releasing``) and drops it.
    """

    __tablename__ = "pending_orders"
    order_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # {"customer_id", "lines": [{"sku","qty"}], "key": str | null}
    payload: Mapped[str] = mapped_column(Text, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, index=True)


class CancelRequest(Base):
    """A cancel the legacy started at a remote stock authority and has not finished.

    Written before the first release: if a release's answer is lost (it may have happened), the
    order is not left placed without its stock; reconciliation releases every line again
    (idempotent) and then cancels the order.
    """

    __tablename__ = "cancel_requests"
    order_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, index=True)


class StockOp(Base):
    """A release the legacy owes the remote stock authority (a cancel that it could not finish)."""

    __tablename__ = "stock_ops"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sku: Mapped[str] = mapped_column(String(64), nullable=False)
    order_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)


# The legacy's transactional outbox (SPEC §3): rows written by `legacy_monolith.outbox`'s session
# hook in the transaction of the change, relayed to the bus by `python -m legacy_monolith consume`.
outbox = outbox_table(Base.metadata)


def make_engine(url: str) -> Engine:
    """Build the engine for a ``sqlite:///`` or ``postgresql://`` URL.

    SQLite gets WAL, a busy timeout and explicit transaction control so that write
    transactions can start with ``BEGIN IMMEDIATE`` (see ``Database.write``).
    """
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, pool_pre_ping=False
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(
        url,
        connect_args={"connect_timeout": 3},
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=10,
        pool_timeout=10,
    )


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from pysqlite so BEGIN is ours (SQLAlchemy's documented recipe).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A write transaction takes the database write lock up front: reads inside it are
        # then consistent with its writes, which is what keeps concurrent orders from overselling.
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def create_schema(engine: Engine) -> None:
    """Create every missing table (idempotent; safe when several processes start at once)."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_SCHEMA})
        Base.metadata.create_all(conn, checkfirst=True)


def next_id(session: Session, model: type[Customer] | type[Order]) -> int:
    """The next legacy id for `model`: max(id) below ``ID_CEILING`` + 1.

    Order ids also skip past every order id that a reservation already names.

    Call inside a write transaction: on PostgreSQL it takes a transaction-scoped advisory
    lock so concurrent allocations serialise; on SQLite ``BEGIN IMMEDIATE`` already does.
    """
    table = model.__tablename__
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_IDS[table]})
    highest = [select(func.max(model.id)).where(model.id < ID_CEILING)]
    if model is Order:
        # Reservations may name order ids the legacy has not allocated yet, and a pending
        # order (a saga in flight) holds its id until it is stored: never reuse those.
        highest += [
            select(func.max(Reservation.order_id)).where(Reservation.order_id < ID_CEILING),
            select(func.max(PendingOrder.order_id)),
        ]
    # ONE statement, so one snapshot under PostgreSQL's READ COMMITTED: a saga that moves its id
    # from pending_orders to orders in one commit is seen in one table or the other, never neither.
    row = session.execute(select(*(func.coalesce(q.scalar_subquery(), 0) for q in highest))).one()
    nxt = max(int(v) for v in row) + 1
    if nxt >= ID_CEILING:
        raise RuntimeError(f"legacy id space of {table} exhausted")
    return nxt


class Database:
    """The engine plus read and write session factories (one per app)."""

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url)
        self.dialect = self.engine.dialect.name
        write_engine = self.engine.execution_options(sqlite_immediate=True)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(write_engine, expire_on_commit=False)
        # Every write transaction records its changes in the outbox (imported here: it needs
        # the models above).
        from legacy_monolith.outbox import install_outbox_hook

        install_outbox_hook(self._write)
        self._schema_lock = threading.Lock()
        self.schema_ready = False

    def ensure_schema(self) -> None:
        """Create the tables once per process (retried later if the database was down)."""
        if self.schema_ready:
            return
        with self._schema_lock:
            if not self.schema_ready:
                create_schema(self.engine)
                self.schema_ready = True

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reads; rolled back at the end."""
        with self._read() as session:
            try:
                yield session
            finally:
                session.rollback()

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite), committed when the block ends."""
        with self._write() as session, session.begin():
            yield session

    @property
    def is_postgres(self) -> bool:
        """True on PostgreSQL, where row locks (``FOR UPDATE``) are used."""
        return self.dialect == "postgresql"

    def ping(self) -> None:
        """Run ``SELECT 1``; raises when the database does not answer."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
