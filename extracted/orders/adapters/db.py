"""Engines for `sqlite:///path` and `postgresql://...` URLs, configured the shop's way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

DEFAULT_URL = "sqlite:///var/orders.db"


def normalise_url(url: str) -> str:
    """Rewrite postgres URLs to the psycopg 3 driver (psycopg2 is not installed)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str = DEFAULT_URL) -> sa.Engine:
    """An engine: SQLite in WAL mode with a busy timeout and serialised writers; psycopg for PG."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database)
    return sa.create_engine(
        url, pool_pre_ping=True, connect_args={"connect_timeout": 3}, pool_size=10
    )


def _sqlite_engine(url: str, database: str | None) -> sa.Engine:
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": 10})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook below own transactions (pysqlite's own are deferred).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # IMMEDIATE takes the write lock up front: read-then-write transactions (id allocation)
        # wait on busy_timeout instead of failing with SQLITE_BUSY half-way.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
