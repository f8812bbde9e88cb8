"""Use cases comparing the two copies: one round of `sync --check`, and the handoff's
precondition for switching STOCK_AUTHORITY."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from extracted.inventory.domain.compare import find_drift, findings, merge_orders
from extracted.inventory.domain.model import Item, ItemState
from extracted.inventory.service.ports import LegacyInventory, UnitOfWorkFactory

# Orders of the new services' side: a list, or None when that side cannot be asked now.
OrdersSource = Callable[[], list[dict[str, Any]] | None]


def our_items(uow_factory: UnitOfWorkFactory) -> list[Item]:
    """Every item of this service's copy."""
    with uow_factory(False) as uow:
        return uow.items.all()


def check_round(
    legacy: LegacyInventory, uow_factory: UnitOfWorkFactory, orders_service: OrdersSource
) -> list[str]:
    """Drift between the copies, and I1/I2 on both sides (see domain.compare.findings).

    The legacy's side is checked against the legacy's orders; ours against every order either
    side holds (the orders service's copy, when it answers, merged by the status lattice).
    """
    theirs = {s.sku: s for s in legacy.items()}
    legacy_orders = legacy.orders()
    ours = {i.sku: i.state() for i in our_items(uow_factory)}
    others = orders_service()
    our_orders = legacy_orders if others is None else merge_orders(legacy_orders, others)
    return findings(ours, theirs, legacy_orders, our_orders)


def handoff_problems(
    to: str,
    legacy: LegacyInventory,
    uow_factory: UnitOfWorkFactory,
    unpublished: int,
    pending: Mapping[str, int],
) -> list[str]:
    """Everything that forbids switching the stock authority `to` now (empty: ready).

    Ready means both copies are identical (items' name/price/on_hand and every reservation)
    and nothing is in flight: our outbox is relayed, no consumer group holds unacked events, and
    no forwarded write mirrored here still waits for its event.
    """
    theirs: dict[str, ItemState] = {s.sku: s for s in legacy.items()}
    items = our_items(uow_factory)
    problems = [d.line() for d in find_drift({i.sku: i.state() for i in items}, theirs)]
    if unpublished:
        problems.append(f"inventory outbox: {unpublished} event(s) not published yet")
    for group, count in sorted(pending.items()):
        if count:
            problems.append(f"event bus group {group!r}: {count} event(s) delivered, not acked")
    if to == "inventory":
        # The new authority continues every item's version from the one it holds.
        problems += [
            f"item {i.sku}: a forwarded write at version {i.floor} awaits its event "
            f"(copy at version {i.version})"
            for i in items
            if i.floor > i.version
        ]
    return problems


@dataclass(frozen=True)
class Verdict:
    """The outcome of `settle`: drift (findings that held all along), or findings in flight."""

    drift: list[str]
    in_flight: list[str]
    rounds: int

    @property
    def clean(self) -> bool:
        """No finding at all in the last round."""
        return not self.drift and not self.in_flight


def settle(
    check: Callable[[], list[str]],
    seconds: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    interval: float = 0.5,
) -> Verdict:
    """Run `check` until it finds nothing or `seconds` have passed (at least once).

    Lag is never drift: a finding is drift only if it kept its exact text in every round since
    the first; findings of the last round that changed or appeared meanwhile are in flight.
    """
    deadline = clock() + seconds
    persistent: set[str] | None = None
    rounds = 0
    while True:
        found = check()
        rounds += 1
        if not found:
            return Verdict([], [], rounds)
        persistent = set(found) if persistent is None else persistent & set(found)
        remaining = deadline - clock()
        if remaining <= 0:
            drift = [line for line in found if line in persistent]
            return Verdict(drift, [line for line in found if line not in persistent], rounds)
        sleep(min(interval, remaining))
