"""`sync --check`: do both copies of the orders agree, and does I2 hold on both sides?

A finding is one record that differs (an order whose two copies differ, a reservation that
does not match the placed orders). Changes in flight show up as findings too, so `settle`
looks again until a pass is clean; only findings that persist through the whole settle
window are drift. A change still propagating when the window ends is lag, never drift.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from extracted.invariants import conservation, oversold
from extracted.orders.domain.errors import DependencyUnavailable
from extracted.orders.domain.model import OrderStatus
from extracted.orders.service.ports import LegacyOrdersPort, Stock, StockPort
from extracted.orders.service.unit_of_work import UnitOfWork

Reservations = Mapping[str, Mapping[int, int]]


@dataclass(frozen=True)
class Snapshot:
    """Everything one pass compares (contract-shaped orders)."""

    ours: list[dict[str, Any]]  # our visible orders
    legacy: list[dict[str, Any]]  # the legacy's orders
    inventory: Stock  # the inventory service's stock (authority or read copy)
    legacy_stock: Stock
    # Our orders whose saga or cancel is still running: their reservations are in flux.
    in_flight: frozenset[int] = frozenset()


async def snapshot(
    uow: UnitOfWork,
    legacy: LegacyOrdersPort,
    legacy_stock: StockPort,
    inventory: StockPort,
    *,
    page_size: int = 500,
) -> Snapshot:
    """Read everything one pass compares; DependencyUnavailable when a side cannot answer."""

    def ours() -> tuple[list[dict[str, Any]], frozenset[int]]:
        with uow:
            visible = [o.to_json() for o in uow.orders.visible()]
            busy = uow.orders.ids_in([OrderStatus.PENDING, OrderStatus.RELEASING])
            busy.update(uow.orders.cancel_requests(float("inf")))
            return visible, frozenset(busy)

    try:
        # A TaskGroup: the first side that fails cancels the other reads.
        async with asyncio.TaskGroup() as reads:
            theirs_task = reads.create_task(_all_orders(legacy, page_size))
            legacy_task = reads.create_task(legacy_stock.snapshot())
            inventory_task = reads.create_task(inventory.snapshot())
    except* DependencyUnavailable as failed:
        raise failed.exceptions[0] from None
    theirs, legacy_held, inventory_held = (
        theirs_task.result(),
        legacy_task.result(),
        inventory_task.result(),
    )
    # Ours last: an order placed here during the pass is then in both or in ours only.
    visible, busy = await asyncio.to_thread(ours)
    return Snapshot(visible, theirs, inventory_held, legacy_held, busy)


async def _all_orders(legacy: LegacyOrdersPort, page_size: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        page = await legacy.page(len(found), page_size)
        found.extend(o.to_json() for o in page.orders)
        if not page.orders or len(found) >= page.total:
            return found


def findings(snap: Snapshot) -> dict[str, str]:
    """Every offending record of one pass, keyed by the record (text: what is wrong)."""
    found: dict[str, str] = {}
    for order_id, theirs, ours in _order_drift(snap.legacy, snap.ours, snap.in_flight):
        found[f"order {order_id}"] = (
            f"order {order_id} differs: legacy={_doc(theirs)} orders={_doc(ours)}"
        )
    sides = (("orders", snap.ours, snap.inventory), ("legacy", snap.legacy, snap.legacy_stock))
    for side, orders, stock in sides:
        kept = [o for o in orders if o["id"] not in snap.in_flight]
        held = _without(stock.reservations, snap.in_flight)
        problems = conservation(kept, held, side=side)
        problems += oversold(stock.on_hand, stock.reservations, side=side)
        found.update((p, p) for p in problems)
    return found


def _order_drift(
    legacy: Iterable[Mapping[str, Any]], ours: Iterable[Mapping[str, Any]], skip: frozenset[int]
) -> list[tuple[int, Mapping[str, Any] | None, Mapping[str, Any] | None]]:
    a = {int(o["id"]): o for o in legacy}
    b = {int(o["id"]): o for o in ours}
    return [
        (i, a.get(i), b.get(i))
        for i in sorted(a.keys() | b.keys())
        if i not in skip and a.get(i) != b.get(i)
    ]


def _without(reservations: Reservations, skip: frozenset[int]) -> dict[str, dict[int, int]]:
    return {
        sku: {o: q for o, q in held.items() if o not in skip} for sku, held in reservations.items()
    }


def _doc(order: Mapping[str, Any] | None) -> str:
    return "missing" if order is None else orjson.dumps(dict(order)).decode()


@dataclass(frozen=True)
class Verdict:
    """The outcome of a check: drift (persisted through the window) and lag still seen."""

    drift: dict[str, str]
    in_flight: int
    passes: int

    @property
    def clean(self) -> bool:
        """No drift (lag is not drift)."""
        return not self.drift


async def settle(
    probe: Callable[[], Awaitable[dict[str, str]]],
    *,
    window: float,
    interval: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Verdict:
    """Probe until a pass is clean, or until `window` seconds are over.

    At the end, drift is what every pass found (the same record, still wrong the same way);
    what appeared later is counted as in flight. Exceptions of `probe` propagate.
    """
    deadline = clock() + window
    persistent: dict[str, str] | None = None
    passes = 0
    while True:
        found = await probe()
        passes += 1
        if not found:
            return Verdict({}, 0, passes)
        persistent = (
            dict(found)
            if persistent is None
            else {k: v for k, v in found.items() if k in persistent}
        )
        if clock() >= deadline:
            return Verdict(persistent, len(found) - len(persistent), passes)
        await sleep(interval)
