"""Engine construction and the database handle (URL rewriting, SQLite set-up, schema)."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from extracted.inventory.adapters.orm import ADDED_COLUMNS, metadata

DEFAULT_DATABASE_URL = "sqlite:///var/inventory.db"


def database_url_from_env(env: Mapping[str, str] = os.environ) -> str:
    """`INVENTORY_DATABASE_URL`, else the embedded SQLite file under `var/`."""
    return env.get("INVENTORY_DATABASE_URL") or DEFAULT_DATABASE_URL


def normalise_url(url: str) -> str:
    """Point `postgresql://` / `postgres://` at psycopg 3 (psycopg2 is not installed)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str) -> sa.Engine:
    """An engine for a `sqlite:///` or `postgresql://` URL.

    SQLite: WAL, busy timeout, and transactions begun by us so that writers can use
    `BEGIN IMMEDIATE` (the write lock up front: that is what serialises reservations).
    """
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database or ""
        if path and path != ":memory:" and not path.startswith("file:"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _configure_sqlite(engine)
        return engine
    return sa.create_engine(
        url,
        connect_args={"connect_timeout": 3},
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=10,
        pool_timeout=10,
    )


def _configure_sqlite(engine: sa.Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # SQLAlchemy's documented recipe: pysqlite must not issue BEGIN itself.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """The engine of the inventory's own database, for reads and for locking writes."""

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url)
        self.write_engine = self.engine.execution_options(sqlite_immediate=True)
        self._schema_lock = threading.Lock()
        self.schema_ready = False

    @property
    def is_postgres(self) -> bool:
        """True on PostgreSQL (row locks); SQLite serialises writers with BEGIN IMMEDIATE."""
        return self.engine.dialect.name == "postgresql"

    def create_schema(self) -> None:
        """Create missing tables (idempotent; concurrent starts on PostgreSQL serialise)."""
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": 0x1A7E17})
            metadata.create_all(conn, checkfirst=True)
            _add_missing_columns(conn)

    def ensure_schema(self) -> None:
        """`create_schema` once per process; retried on the next call if the database was down."""
        if self.schema_ready:
            return
        with self._schema_lock:
            if not self.schema_ready:
                self.create_schema()
                self.schema_ready = True

    def ping(self) -> None:
        """`SELECT 1`; raises when the database does not answer."""
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()


def _add_missing_columns(conn: sa.Connection) -> None:
    """Bring a database made by an older release up to date (columns only ever get added)."""
    inspector = sa.inspect(conn)
    for table_name, names in ADDED_COLUMNS.items():
        present = {c["name"] for c in inspector.get_columns(table_name)}
        table = metadata.tables[table_name]
        for name in names:
            if name not in present:
                column = table.c[name]
                kind = column.type.compile(dialect=conn.dialect)
                quoted = conn.dialect.identifier_preparer.quote(name)
                clause = column.server_default
                default = clause.arg if isinstance(clause, sa.DefaultClause) else None
                conn.execute(
                    sa.text(
                        f"ALTER TABLE {table_name} ADD COLUMN {quoted} {kind} NOT NULL "
                        f"DEFAULT {default}"
                    )
                )
