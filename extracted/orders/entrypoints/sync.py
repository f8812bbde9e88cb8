"""`sync`: the backfill (one shot), `--follow` (consume the bus), `--check` (drift + I2)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from extracted.events import bus_from_env
from extracted.orders.adapters.stock_reader import HttpStock
from extracted.orders.bootstrap import Wiring, breaker, wired
from extracted.orders.config import Settings
from extracted.orders.domain.errors import DependencyUnavailable
from extracted.orders.entrypoints.consumer import OrdersConsumer
from extracted.orders.service import backfill as backfill_job
from extracted.orders.service import check as drift_check

log = logging.getLogger(__name__)

Out = Callable[[str], None]

EXIT_OK = 0
EXIT_DRIFT = 1
EXIT_UNREACHABLE = 2
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}


def _print(line: str) -> None:
    print(line, flush=True)


def parse_duration(text: str) -> float:
    """`10s`, `500ms`, `1m` or plain seconds (`10`, `2.5`) -> seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (examples: 10s, 500ms, 2.5)")
    return float(match.group(1)) * _UNITS[match.group(2)]


async def run_backfill(settings: Settings, *, restart: bool = False, out: Out = _print) -> int:
    """`sync`: run or resume the backfill once; 2 when the legacy or the database is down."""
    try:
        async with wired(settings, wait_for_database=False) as w:
            if restart:
                await backfill_job.restart(w.uow())
            try:
                report = await backfill_job.backfill(
                    w.uow(), w.legacy_orders, page_size=settings.backfill_page
                )
            except DependencyUnavailable as exc:
                done = await _progress_or_none(w)
                out(f"sync failed: {exc.detail} (progress kept: {done} orders read)")
                return EXIT_UNREACHABLE
    except DependencyUnavailable as exc:
        out(f"sync failed: {exc.detail}")
        return EXIT_UNREACHABLE
    out(report.summary())
    return EXIT_OK


async def _progress_or_none(w: Wiring) -> int | None:
    try:
        return (await backfill_job.progress(w.uow())).cursor
    except DependencyUnavailable:
        return None


async def run_follow(settings: Settings, *, consumer: str | None = None) -> int:
    """`sync --follow`: group first, then the backfill if not complete, then consume forever."""
    async with wired(settings) as w:
        bus = bus_from_env()
        worker = OrdersConsumer(bus, w.uow, consumer=consumer)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, worker.stopping.set)
        try:
            await _ensure_group(worker)
            if worker.stopping.is_set():
                return EXIT_OK
            await _until_stopped(
                worker,
                backfill_job.backfill_until_complete(
                    w.uow(), w.legacy_orders, page_size=settings.backfill_page
                ),
            )
            log.info("consuming as %s in group %s", worker.consumer, worker.group)
            await worker.run()
        finally:
            await bus.close()
        log.info("consumer stopped: %s", worker.stats)
    return EXIT_OK


async def _ensure_group(worker: OrdersConsumer) -> None:
    delay = backfill_job.BACKOFF_START
    while not worker.stopping.is_set():
        try:
            await worker.ensure_group()
            return
        except Exception as exc:  # the bus is down: wait for it, never crash-loop
            log.warning("event bus unavailable (%s); retrying in %.1fs", exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(worker.stopping.wait(), delay)
            delay = min(delay * 2, backfill_job.BACKOFF_MAX)


async def _until_stopped(worker: OrdersConsumer, job: Coroutine[Any, Any, object]) -> None:
    """Await `job` unless the worker is told to stop first."""
    task = asyncio.ensure_future(job)
    stop = asyncio.ensure_future(worker.stopping.wait())
    await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    for pending in (task, stop):
        pending.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def run_check(settings: Settings, *, settle: float, out: Out = _print) -> int:
    """`sync --check`: 0 clean (lag included), 1 drift, 2 legacy/inventory/database down."""
    try:
        async with wired(settings, wait_for_database=False) as w:
            inventory = HttpStock(w.inventory_http, breaker("inventory", settings))
            legacy_stock = HttpStock(w.legacy_http, breaker("legacy", settings))

            async def probe() -> dict[str, str]:
                snap = await drift_check.snapshot(
                    w.uow(),
                    w.legacy_orders,
                    legacy_stock,
                    inventory,
                    page_size=settings.backfill_page,
                )
                return drift_check.findings(snap)

            verdict = await drift_check.settle(probe, window=settle)
    except DependencyUnavailable as exc:
        out(f"cannot check: {exc.detail}")
        return EXIT_UNREACHABLE
    for text in sorted(verdict.drift.values()):
        out(text)
    if verdict.drift:
        out(f"{len(verdict.drift)} differences persisted for {settle:g}s")
        return EXIT_DRIFT
    if verdict.in_flight:
        out(f"no differences ({verdict.in_flight} changes still in flight after {settle:g}s)")
    else:
        out("no differences")
    return EXIT_OK


def main_sync(
    *,
    follow: bool = False,
    check: bool = False,
    settle: float = 10.0,
    restart: bool = False,
    consumer: str | None = None,
) -> int:
    """Entry for `python -m extracted.orders sync`."""
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
    settings = Settings.from_env()
    try:
        if check:
            return asyncio.run(run_check(settings, settle=settle))
        if follow:
            return asyncio.run(run_follow(settings, consumer=consumer))
        return asyncio.run(run_backfill(settings, restart=restart))
    except KeyboardInterrupt:
        return EXIT_OK
