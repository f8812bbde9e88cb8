"""Databases and data: the scratch SQLite files or fresh PostgreSQL databases, and the legacy's
orders table sized to the benchmark's 200 / 200,000 rows.

The size is set directly in the legacy's database before any service starts (a benchmark fast
path, not the product's way in): extra orders are bulk-inserted as *cancelled* orders, so they
hold no reservations and I1/I2 still hold; going below the seed's 1000 deletes the newest orders
with their lines and reservations. No outbox rows are written, so the new services get these
orders only through their backfill (`sync`, timed separately).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

ID_CEILING = 1_000_000_000
_BATCH = 10_000


@dataclass
class Databases:
    """The three databases of one stack (URLs as the processes get them)."""

    legacy: str
    orders: str
    inventory: str
    pg_names: tuple[str, ...] = ()
    pg_admin: str | None = None

    def urls(self) -> dict[str, str]:
        return {"legacy": self.legacy, "orders": self.orders, "inventory": self.inventory}

    def drop(self) -> None:
        """Drop the PostgreSQL databases this run created (SQLite files go with the scratch dir)."""
        if not self.pg_names or self.pg_admin is None:
            return
        import psycopg

        with psycopg.connect(self.pg_admin, autocommit=True, connect_timeout=5) as conn:
            for name in self.pg_names:
                with contextlib.suppress(Exception):
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sqlite_databases(workdir: Path) -> Databases:
    return Databases(
        legacy=f"sqlite:///{workdir}/legacy.db",
        orders=f"sqlite:///{workdir}/orders.db",
        inventory=f"sqlite:///{workdir}/inventory.db",
    )


def postgres_databases(base_url: str, prefix: str) -> Databases:
    """Create `<prefix>_legacy|orders|inventory` on the server of `base_url` (fresh, empty)."""
    import psycopg

    url = sa.engine.make_url(base_url)
    admin = url.set(drivername="postgresql", database="postgres")
    admin_dsn = admin.render_as_string(hide_password=False)
    names = tuple(f"{prefix}_{n}" for n in ("legacy", "orders", "inventory"))
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    urls = [url.set(database=n).render_as_string(hide_password=False) for n in names]
    return Databases(*urls, pg_names=names, pg_admin=admin_dsn)


def engine_for(url: str) -> sa.Engine:
    """A small engine for the benchmark's own reads and the bulk insert."""
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return sa.create_engine(url, pool_size=2, max_overflow=2, pool_pre_ping=True)
    return sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})


def resize_legacy_orders(url: str, target: int, *, seed: int = 7) -> str:
    """Make the legacy hold `target` orders (see the module doc); returns what was done."""
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            ids = [r[0] for r in conn.execute(sa.text("SELECT id FROM orders ORDER BY id"))]
        have = len(ids)
        if have > target:
            cutoff = ids[target - 1] if target > 0 else 0
            with engine.begin() as conn:
                params = {"cut": cutoff, "ceil": ID_CEILING}
                conn.execute(
                    sa.text("DELETE FROM reservations WHERE order_id > :cut AND order_id < :ceil"),
                    params,
                )
                conn.execute(sa.text("DELETE FROM order_lines WHERE order_id > :cut"), params)
                conn.execute(sa.text("DELETE FROM orders WHERE id > :cut"), params)
            return f"deleted {have - target} orders (kept ids <= {cutoff})"
        if have < target:
            _bulk_insert(engine, start=(max(ids) if ids else 0) + 1, count=target - have, seed=seed)
            return f"inserted {target - have} cancelled orders"
        return "unchanged"
    finally:
        engine.dispose()


def _bulk_insert(engine: sa.Engine, *, start: int, count: int, seed: int) -> None:
    rng = random.Random(seed)
    with engine.begin() as conn:
        prices = dict(conn.execute(sa.text("SELECT sku, price_cents FROM items")).all())
        customers = [r[0] for r in conn.execute(sa.text("SELECT id FROM customers"))]
    skus = sorted(prices)
    # the legacy's own table definitions: the column types are right on SQLite and PostgreSQL
    from legacy_monolith.db import Order, OrderLine

    orders_insert = sa.insert(Order.__table__)
    lines_insert = sa.insert(OrderLine.__table__)
    epoch = dt.datetime(2025, 1, 1)
    for first in range(start, start + count, _BATCH):
        orders: list[dict[str, object]] = []
        lines: list[dict[str, object]] = []
        for oid in range(first, min(first + _BATCH, start + count)):
            chosen = rng.sample(skus, rng.randint(1, 3))
            total = 0
            for line_no, sku in enumerate(chosen):
                qty = rng.randint(1, 5)
                total += qty * prices[sku]
                lines.append(
                    {
                        "order_id": oid,
                        "sku": sku,
                        "line_no": line_no,
                        "qty": qty,
                        "price_cents": prices[sku],
                        "origin": "legacy",
                    }
                )
            orders.append(
                {
                    "id": oid,
                    "customer_id": rng.choice(customers),
                    "status": "cancelled",
                    "total_cents": total,
                    "placed_at": epoch + dt.timedelta(seconds=oid),
                    "origin": "legacy",
                }
            )
        with engine.begin() as conn:
            conn.execute(orders_insert, orders)
            conn.execute(lines_insert, lines)


def redis_cleanup(redis_url: str, stream: str, prefix: str) -> None:
    """Delete the run's stream and the gateway's keys under `prefix:` (ours only)."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        client.delete(stream)
        for key in client.scan_iter(match=f"{prefix}:*", count=500):
            client.delete(key)
    finally:
        client.close()
