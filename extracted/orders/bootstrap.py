"""The one wiring place: engine, clients, breakers, background tasks -> the app and the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import sqlalchemy as sa
from aiohttp import web

from extracted.dependency import make_client
from extracted.events import OutboxRelay, bus_from_env
from extracted.orders.adapters.breaker import DependencyBreaker
from extracted.orders.adapters.crash import CrashAfterFirstReserve
from extracted.orders.adapters.customers_client import HttpCustomers
from extracted.orders.adapters.db import make_engine
from extracted.orders.adapters.inventory_client import HttpInventory
from extracted.orders.adapters.legacy_orders import HttpLegacyOrders
from extracted.orders.adapters.orm import create_tables, outbox
from extracted.orders.adapters.unit_of_work import SqlUnitOfWork
from extracted.orders.config import Settings
from extracted.orders.domain.errors import DependencyUnavailable
from extracted.orders.entrypoints.api import DEPS, Deps, create_app
from extracted.orders.service.backfill import BackfillReport, backfill_until_complete
from extracted.orders.service.handlers import finish_cancels
from extracted.orders.service.ports import InventoryPort
from extracted.orders.service.reconcile import reconcile

log = logging.getLogger(__name__)


@dataclass
class Wiring:
    """The service's resources, opened once per process by `wired`."""

    settings: Settings
    engine: sa.Engine
    inventory_http: httpx.AsyncClient
    legacy_http: httpx.AsyncClient
    inventory: InventoryPort
    customers: HttpCustomers
    legacy_orders: HttpLegacyOrders

    def uow(self) -> SqlUnitOfWork:
        """A unit of work on the service's database."""
        return SqlUnitOfWork(self.engine)


@contextlib.asynccontextmanager
async def wired(settings: Settings, *, wait_for_database: bool = True) -> AsyncIterator[Wiring]:
    """Open the database (tables created) and the dependency clients; close them after.

    Long-running processes wait for a database that is down; one-shot commands pass
    `wait_for_database=False` and get DependencyUnavailable instead.
    """
    engine = make_engine(settings.database_url)
    inventory_http = make_client(
        settings.inventory_url,
        timeout=settings.http_timeout,
        connect_timeout=settings.connect_timeout,
    )
    legacy_http = make_client(
        settings.legacy_url, timeout=settings.http_timeout, connect_timeout=settings.connect_timeout
    )
    try:
        await _create_tables(engine, wait=wait_for_database)
        inventory: InventoryPort = HttpInventory(inventory_http, breaker("inventory", settings))
        if settings.crash_after_reserve:
            inventory = CrashAfterFirstReserve(inventory)
        yield Wiring(
            settings=settings,
            engine=engine,
            inventory_http=inventory_http,
            legacy_http=legacy_http,
            inventory=inventory,
            customers=HttpCustomers(legacy_http, breaker("customers", settings)),
            legacy_orders=HttpLegacyOrders(legacy_http, breaker("legacy", settings)),
        )
    finally:
        await inventory_http.aclose()
        await legacy_http.aclose()
        engine.dispose()


async def _create_tables(engine: sa.Engine, *, wait: bool) -> None:
    """Create the tables; with `wait`, wait for a database that is not up yet (no crash loop)."""
    delay = 0.5
    while True:
        try:
            await asyncio.to_thread(create_tables, engine)
            return
        except sa.exc.DBAPIError as exc:
            if not wait:
                raise DependencyUnavailable("database") from exc
            log.warning("database unavailable (%s); retrying in %.1fs", exc.orig, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


def breaker(name: str, settings: Settings) -> DependencyBreaker:
    """A circuit breaker for one dependency, as configured."""
    return DependencyBreaker(
        name, failures=settings.breaker_failures, reset_after=settings.breaker_reset_after
    )


async def backfill_before_serving(settings: Settings) -> BackfillReport:
    """Run (or resume) the backfill to completion, retrying while the legacy is down.

    `serve` calls this BEFORE it listens: until every legacy order is here, the port refuses
    connections, so the gateway falls back to the legacy as for a dead upstream instead of
    getting 404s for records that exist there (SPEC §3 "Never answer from data not there yet").
    """
    async with wired(settings) as w:
        report = await backfill_until_complete(
            w.uow(), w.legacy_orders, page_size=settings.backfill_page
        )
    log.info("%s", report.summary())
    return report


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
        async with wired(settings) as w:
            app[DEPS] = Deps(
                uow=w.uow,
                inventory=w.inventory,
                customers=w.customers,
                healthy=lambda: asyncio.to_thread(_ping, w.engine),
                legacy_orders=w.legacy_orders,
            )
            tasks = [asyncio.create_task(_reconcile_forever(w))]
            bus = None
            if settings.relay_events:
                bus = bus_from_env()
                tasks.append(asyncio.create_task(OutboxRelay(w.engine, outbox, bus).run()))
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                if bus is not None:
                    await bus.close()

    return resources


def _ping(engine: sa.Engine) -> bool:
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    return True


async def _reconcile_forever(w: Wiring) -> None:
    """Reconcile sagas and unfinished cancels at start-up, then every `reconcile_interval`."""
    settings = w.settings
    while True:
        try:
            await reconcile(w.uow(), w.inventory, older_than=settings.pending_grace)
            await finish_cancels(w.uow(), w.inventory, older_than=settings.pending_grace)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("reconciliation failed; retrying later", exc_info=True)
        await asyncio.sleep(settings.reconcile_interval)
