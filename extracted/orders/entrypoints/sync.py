"""`sync`: copy the legacy's orders through its HTTP API; `--follow`; `--check` (drift)."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable

import httpx
import orjson

from extracted.orders.adapters.db import make_engine
from extracted.orders.adapters.http import make_client
from extracted.orders.adapters.legacy_orders import LegacyUnavailable, fetch_legacy_orders
from extracted.orders.adapters.orm import create_tables
from extracted.orders.adapters.unit_of_work import SqlUnitOfWork
from extracted.orders.config import Settings
from extracted.orders.domain.errors import DependencyUnavailable
from extracted.orders.service.sync import (
    SyncPlan,
    apply_sync,
    drift,
    load_legacy_range,
    load_visible,
    plan_sync,
)

log = logging.getLogger(__name__)

Out = Callable[[str], None]


def _print(line: str) -> None:
    print(line, flush=True)


async def sync_once(uow: SqlUnitOfWork, legacy: httpx.AsyncClient) -> SyncPlan:
    """One pass: fetch the legacy's orders, write what differs, return the plan applied."""
    theirs = await fetch_legacy_orders(legacy)
    plan = plan_sync(theirs, await load_legacy_range(uow))
    await apply_sync(plan, uow)
    return plan


async def check(uow: SqlUnitOfWork, legacy: httpx.AsyncClient, out: Out = _print) -> int:
    """Print every order whose two copies differ; 1 if any, else 0."""
    theirs = await fetch_legacy_orders(legacy)
    differing = drift(theirs, await load_visible(uow))
    for d in differing:
        legacy_doc = orjson.dumps(d.legacy).decode() if d.legacy else "missing"
        ours_doc = orjson.dumps(d.ours).decode() if d.ours else "missing"
        out(f"order {d.order_id} differs: legacy={legacy_doc} orders={ours_doc}")
    out(f"{len(differing)} differing orders" if differing else "no differences")
    return 1 if differing else 0


async def run_sync(
    settings: Settings, *, follow: bool, interval: float, check_only: bool, out: Out = _print
) -> int:
    """The `sync` command; returns the exit code."""
    engine = make_engine(settings.database_url)
    legacy = make_client(settings.legacy_url, timeout=max(settings.http_timeout, 30.0))
    try:
        await asyncio.to_thread(create_tables, engine)
        uow = SqlUnitOfWork(engine)
        if check_only:
            try:
                return await check(uow, legacy, out)
            except LegacyUnavailable as exc:
                out(f"legacy unavailable: {exc}")
                return 2
        if not follow:
            try:
                plan = await sync_once(uow, legacy)
            except (LegacyUnavailable, DependencyUnavailable) as exc:
                out(f"sync failed: {exc}")
                return 2
            out(plan.summary())
            return 0
        while True:  # --follow: poll forever, surviving a legacy that is down or restarting
            try:
                plan = await sync_once(uow, legacy)
                if plan.create or plan.update:
                    out(plan.summary())
            except (LegacyUnavailable, DependencyUnavailable) as exc:
                log.warning("sync pass failed (%s); retrying in %.1fs", exc, interval)
            except Exception:
                log.exception("sync pass failed; retrying in %.1fs", interval)
            await asyncio.sleep(interval)
    finally:
        await legacy.aclose()
        engine.dispose()


def main_sync(follow: bool, interval: float, check_only: bool) -> int:
    """Entry for `python -m extracted.orders sync`."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
    try:
        return asyncio.run(
            run_sync(Settings.from_env(), follow=follow, interval=interval, check_only=check_only)
        )
    except KeyboardInterrupt:
        return 0
