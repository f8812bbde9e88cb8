"""The one wiring place: engine, clients, breakers, background tasks -> the aiohttp app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

import sqlalchemy as sa
from aiohttp import web

from extracted.events import OutboxRelay, bus_from_env
from extracted.orders.adapters.breaker import DependencyBreaker
from extracted.orders.adapters.crash import CrashAfterFirstReserve
from extracted.orders.adapters.customers_client import HttpCustomers
from extracted.orders.adapters.db import make_engine
from extracted.orders.adapters.http import make_client
from extracted.orders.adapters.inventory_client import HttpInventory
from extracted.orders.adapters.orm import create_tables, outbox
from extracted.orders.adapters.unit_of_work import SqlUnitOfWork
from extracted.orders.config import Settings
from extracted.orders.entrypoints.api import DEPS, Deps, create_app
from extracted.orders.service.ports import InventoryPort
from extracted.orders.service.reconcile import reconcile

log = logging.getLogger(__name__)


def build_app(settings: Settings) -> web.Application:
    """The orders API with its resources opened and closed in `cleanup_ctx`."""
    app = create_app()
    app.cleanup_ctx.append(_resources(settings))
    return app


def _resources(
    settings: Settings,
) -> Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def resources(app: web.Application) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        await asyncio.to_thread(create_tables, engine)
        inventory_http = make_client(
            settings.inventory_url,
            timeout=settings.http_timeout,
            connect_timeout=settings.connect_timeout,
        )
        legacy_http = make_client(
            settings.legacy_url,
            timeout=settings.http_timeout,
            connect_timeout=settings.connect_timeout,
        )
        inventory: InventoryPort = HttpInventory(inventory_http, _breaker("inventory", settings))
        if settings.crash_after_reserve:
            inventory = CrashAfterFirstReserve(inventory)
        customers = HttpCustomers(legacy_http, _breaker("customers", settings))
        app[DEPS] = Deps(
            uow=lambda: SqlUnitOfWork(engine),
            inventory=inventory,
            customers=customers,
            healthy=lambda: asyncio.to_thread(_ping, engine),
        )
        tasks = [asyncio.create_task(_reconcile_forever(engine, inventory, settings))]
        bus = None
        if settings.relay_events:
            bus = bus_from_env()
            tasks.append(asyncio.create_task(OutboxRelay(engine, outbox, bus).run()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if bus is not None:
                await bus.close()
            await inventory_http.aclose()
            await legacy_http.aclose()
            engine.dispose()

    return resources


def _breaker(name: str, settings: Settings) -> DependencyBreaker:
    return DependencyBreaker(
        name, failures=settings.breaker_failures, reset_after=settings.breaker_reset_after
    )


def _ping(engine: sa.Engine) -> bool:
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    return True


async def _reconcile_forever(
    engine: sa.Engine, inventory: InventoryPort, settings: Settings
) -> None:
    """Reconcile at start-up, then every `reconcile_interval` seconds; never dies."""
    while True:
        try:
            await reconcile(SqlUnitOfWork(engine), inventory, older_than=settings.pending_grace)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("reconciliation failed; retrying later", exc_info=True)
        await asyncio.sleep(settings.reconcile_interval)
