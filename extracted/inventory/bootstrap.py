"""The one wiring place: database, stock port (local or the legacy's, with its client and
breaker), bus and outbox relay -> the web app, the follower and the CLI's database.

The web stack is imported only by `build_app`: `sync` and `handoff` do not need it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import httpx
import sqlalchemy as sa

from extracted.dependency import make_client
from extracted.events import EventBus, OutboxRelay, bus_from_env
from extracted.inventory.adapters.breaker import DependencyBreaker
from extracted.inventory.adapters.database import Database, database_url_from_env
from extracted.inventory.adapters.legacy_stock import NAME, LegacyStock
from extracted.inventory.adapters.local_stock import LocalStock
from extracted.inventory.adapters.orm import outbox
from extracted.inventory.adapters.unit_of_work import uow_factory
from extracted.inventory.config import legacy_url_from_env
from extracted.inventory.entrypoints.follow import Follower
from extracted.inventory.service.ports import StockPort
from extracted.stock_authority import Authority, stock_authority

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("extracted.inventory.bootstrap")


def open_database() -> Database:
    """The service's own database, at `INVENTORY_DATABASE_URL`."""
    return Database(database_url_from_env())


def build_app(
    database: Database | None = None,
    *,
    bus: EventBus | None = None,
    authority: Authority | None = None,
    legacy_url: str | None = None,
    legacy_timeout: float = 3.0,
    legacy_transport: httpx.AsyncBaseTransport | None = None,
) -> web.Application:
    """The inventory web application with its resources.

    `database` defaults to `INVENTORY_DATABASE_URL`; `bus` to `bus_from_env()`; `authority` to
    `STOCK_AUTHORITY`. As the authority, stock writes go to our own tables (`LocalStock`);
    otherwise to the legacy at `legacy_url` (default `LEGACY_URL`) through `LegacyStock`.
    Tables are created at start-up and the outbox relay runs for the app's lifetime.
    """
    from extracted.inventory.entrypoints.api import create_app

    db = database if database is not None else open_database()
    uow = uow_factory(db)
    legacy_client: httpx.AsyncClient | None = None
    stock: StockPort
    if (authority or stock_authority()) == "inventory":
        stock = LocalStock(uow, db.ensure_schema)
    else:
        legacy_client = make_client(
            legacy_url or legacy_url_from_env(),
            timeout=legacy_timeout,
            connect_timeout=min(1.0, legacy_timeout),
            transport=legacy_transport,
        )
        stock = LegacyStock(legacy_client, DependencyBreaker(NAME), uow, db.ensure_schema)
    app = create_app(db, uow, stock)
    app.cleanup_ctx.append(_resources(db, bus, legacy_client))
    return app


def _resources(
    db: Database, bus: EventBus | None, legacy_client: httpx.AsyncClient | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def resources(app: web.Application) -> AsyncIterator[None]:
        try:
            await asyncio.to_thread(db.ensure_schema)
        except sa.exc.DBAPIError as exc:
            # Serve anyway: /healthz says 503 and requests retry the schema once it is back.
            log.warning("database unavailable at start-up: %s", exc)
        the_bus = bus if bus is not None else bus_from_env()
        # Also while the legacy is the authority: rows written before a handoff still go out.
        relay = OutboxRelay(db.engine, outbox, the_bus)
        task = asyncio.create_task(relay.run(), name="inventory-outbox-relay")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await the_bus.close()
            if legacy_client is not None:
                await legacy_client.aclose()
            db.dispose()

    return resources


def follower(db: Database, authority: Authority, consumer: str) -> Follower:
    """The `sync --follow` consumer on the bus from the environment (closed by the caller)."""
    return Follower(
        bus_from_env(), uow_factory(db), authority, consumer=consumer, prepare=db.ensure_schema
    )
