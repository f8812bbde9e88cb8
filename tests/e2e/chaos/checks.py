"""Both sides read back through their HTTP APIs, and SPEC §3 I1-I4 as lists of findings.

A side is what its clients can see: the legacy (orders, items, reservations), or the new
services (orders from the orders service, stock from the inventory service: the authority).
Every check returns human-readable problem lines; an empty list is a pass.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from extracted.invariants import conservation, oversold
from tests.e2e.chaos.traffic import Ledger, signature

PAGE = 500
TIMEOUT = httpx.Timeout(10.0, connect=3.0)


def _paged(client: httpx.Client, url: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        r = client.get(url, params={"limit": PAGE, "offset": len(items)}, timeout=TIMEOUT)
        r.raise_for_status()
        page = r.json()
        items.extend(page["items"])
        if not page["items"] or len(items) >= page["total"]:
            return items


@dataclass
class Side:
    """One side's orders, items and reservations, as its API shows them."""

    name: str
    orders: dict[int, dict[str, Any]]
    items: dict[str, dict[str, Any]]
    reservations: dict[str, dict[int, int]]

    @classmethod
    def read(cls, client: httpx.Client, name: str, orders_url: str, stock_url: str) -> Side:
        orders = {o["id"]: o for o in _paged(client, f"{orders_url}/api/orders")}
        items = {i["sku"]: i for i in _paged(client, f"{stock_url}/api/inventory")}
        reservations = {}
        for sku in items:
            held = _paged(client, f"{stock_url}/api/inventory/{sku}/reservations")
            if held:
                reservations[sku] = {r["order_id"]: r["qty"] for r in held}
        return cls(name, orders, items, reservations)

    @property
    def on_hand(self) -> dict[str, int]:
        return {sku: i["on_hand"] for sku, i in self.items.items()}


def read_both(client: httpx.Client, urls: dict[str, str]) -> tuple[Side, Side]:
    """(legacy, new services)."""
    legacy = Side.read(client, "legacy", urls["legacy"], urls["legacy"])
    new = Side.read(client, "new", urls["orders"], urls["inventory"])
    return legacy, new


def _diff(what: str, a: dict, b: dict, limit: int = 15) -> list[str]:
    problems = []
    for k in sorted(set(a) | set(b), key=str):
        if a.get(k) != b.get(k):
            problems.append(f"{what} {k}: legacy {a.get(k)!r} != new {b.get(k)!r}")
    if len(problems) > limit:
        problems = [*problems[:limit], f"... and {len(problems) - limit} more {what} differences"]
    return problems


def agreement(legacy: Side, new: Side) -> list[str]:
    """The two copies are identical (orders, stock, reservations) and I2 holds on both sides."""
    return [
        *_diff("order", legacy.orders, new.orders),
        *_diff("item", legacy.items, new.items),
        *_diff("reservations of", legacy.reservations, new.reservations),
        *conservation(legacy.orders.values(), legacy.reservations, side="legacy"),
        *conservation(new.orders.values(), new.reservations, side="new"),
    ]


def settle(
    client: httpx.Client, urls: dict[str, str], deadline: float
) -> tuple[Side, Side, list[str]]:
    """Read both sides until they agree or `deadline` (monotonic) passes."""
    while True:
        try:
            legacy, new = read_both(client, urls)
        except httpx.HTTPError as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read both sides: {exc!r}") from exc
            time.sleep(1.0)
            continue
        problems = agreement(legacy, new)
        if not problems or time.monotonic() > deadline:
            return legacy, new, problems
        time.sleep(1.0)


@dataclass
class Baseline:
    """The contended skus before the traffic: on_hand, reservations, available (authority)."""

    on_hand: dict[str, int]
    reserved: dict[str, int]
    available: dict[str, int]
    order_ids: set[int]  # every order that existed before the traffic


@dataclass
class Watch:
    """Samples the stock of the contended skus on both sides while the traffic runs (I1 live)."""

    urls: dict[str, str]
    skus: list[str]
    interval: float = 0.3
    samples: int = 0
    problems: list[str] = field(default_factory=list)
    copy_anomalies: list[str] = field(default_factory=list)
    min_available: dict[str, int] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def _sample(self, client: httpx.Client) -> None:
        for side in ("inventory", "legacy"):
            for sku in self.skus:
                try:
                    r = client.get(f"{self.urls[side]}/api/inventory/{sku}", timeout=2.0)
                except httpx.HTTPError:
                    continue
                if r.status_code != 200:
                    continue
                item = r.json()
                self.samples += 1
                if side == "inventory":
                    self.min_available[sku] = min(
                        self.min_available.get(sku, item["available"]), item["available"]
                    )
                if item["reserved"] > item["on_hand"] or item["available"] < 0:
                    if side == "inventory":
                        self.problems.append(f"I1 live: the authority oversold {sku}: {item}")
                    else:  # a read copy between two events; counted, not an oversell
                        self.copy_anomalies.append(f"legacy copy {sku}: {item}")

    def run(self) -> None:
        with httpx.Client() as client:
            while not self.stop.wait(self.interval):
                self._sample(client)

    def start(self) -> None:
        self.thread = threading.Thread(target=self.run, name="watch", daemon=True)
        self.thread.start()

    def join(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(10)


def union(legacy: Side, new: Side) -> dict[int, dict[str, Any]]:
    """Every order either side holds (cancelled wins where they disagree)."""
    merged = dict(new.orders)
    for oid, order in legacy.orders.items():
        if oid not in merged or order["status"] == "cancelled":
            merged[oid] = order
    return merged


def held_units(orders: Iterable[dict[str, Any]], sku: str) -> int:
    """Units of `sku` in placed orders."""
    return sum(
        line["qty"]
        for o in orders
        if o["status"] == "placed"
        for line in o["items"]
        if line["sku"] == sku
    )


def check_i1(legacy: Side, new: Side, base: Baseline, watch: Watch) -> tuple[list[str], dict]:
    """No oversell: per contended sku, placed units <= stock; the run's units <= what was free."""
    problems = list(watch.problems)
    orders = union(legacy, new)
    run_orders = [o for oid, o in orders.items() if oid not in base.order_ids]
    numbers = {}
    for sku in sorted(base.on_hand):
        stock = new.items[sku]["on_hand"]
        held = held_units(orders.values(), sku)
        run = held_units(run_orders, sku)
        reserved = new.items[sku]["reserved"]
        numbers[sku] = {"on_hand": stock, "held": held, "run": run, "free": base.available[sku]}
        if stock != base.on_hand[sku]:
            problems.append(f"I1 {sku}: on_hand moved {base.on_hand[sku]} -> {stock} (no restock)")
        if held > stock:
            problems.append(f"I1 {sku}: {held} units in placed orders > {stock} on hand")
        if reserved > stock:
            problems.append(f"I1 {sku}: authority reserves {reserved} > {stock} on hand")
        if run > base.available[sku]:
            problems.append(
                f"I1 {sku}: the run placed {run} units, only {base.available[sku]} were available"
            )
    problems += oversold(new.on_hand, new.reservations, side="new")
    problems += oversold(legacy.on_hand, legacy.reservations, side="legacy")
    return problems, numbers


def check_i2(legacy: Side, new: Side) -> list[str]:
    """Conservation on both sides, and on_hand equal."""
    return [
        *conservation(legacy.orders.values(), legacy.reservations, side="legacy"),
        *conservation(new.orders.values(), new.reservations, side="new"),
        *_diff("on_hand of", legacy.on_hand, new.on_hand),
    ]


def check_i3(legacy: Side, new: Side, base: Baseline, ledger: Ledger) -> tuple[list[str], dict]:
    """No lost write: every 201 and every accepted cancel on both sides; the copies identical."""
    problems = []
    for oid, answered in sorted(ledger.accepted.items()):
        for side in (legacy, new):
            got = side.orders.get(oid)
            if got is None:
                problems.append(
                    f"I3 order {oid} (201 via {ledger.accepted_side[oid]}) missing on {side.name}"
                )
                continue
            want = dict(answered)
            if got["status"] == "cancelled" and oid in ledger.cancel_tried:
                want["status"] = "cancelled"
            if got != want:
                problems.append(f"I3 order {oid} on {side.name}: {got} != answered {answered}")
    for oid in sorted(ledger.cancel_ok):
        for side in (legacy, new):
            got = side.orders.get(oid)
            if got is None or got["status"] != "cancelled":
                problems.append(f"I3 cancel of {oid} accepted, {side.name} has {got}")
    problems += _diff("order", legacy.orders, new.orders)
    orders = union(legacy, new)
    new_ids = sorted(set(orders) - base.order_ids)
    unanswered = [oid for oid in new_ids if oid not in ledger.accepted]
    if len(unanswered) > ledger.unknown_places:
        problems.append(
            f"I3 {len(unanswered)} orders exist that no client was told about, but only "
            f"{ledger.unknown_places} attempts had an unknown outcome: {unanswered[:20]}"
        )
    for oid in new_ids:
        if orders[oid]["status"] == "cancelled" and oid not in ledger.cancel_tried:
            problems.append(f"I3 order {oid} is cancelled but nobody cancelled it")
    numbers = {"orders_created": len(new_ids), "placed_unanswered": len(unanswered)}
    return problems, numbers


def check_i4(legacy: Side, new: Side, ledger: Ledger) -> tuple[list[str], dict]:
    """One key, at most one order id in every answer, and exactly one order for it."""
    problems = []
    by_signature: dict[tuple, list[int]] = {}
    for oid, o in union(legacy, new).items():
        by_signature.setdefault(signature(o["customer_id"], o["items"]), []).append(oid)
    replays = 0
    for key, rec in sorted(ledger.keys.items()):
        ids = rec.ids
        exist = sorted(by_signature.get(signature(rec.customer_id, rec.items), []))
        if len(ids) > 1:
            problems.append(f"I4 key {key}: answers name orders {sorted(ids)}: {rec.answers}")
        if len(ids) <= 1 and exist != sorted(ids):
            # After the final repeats on both sides, a placed order was answered to someone.
            problems.append(f"I4 key {key}: orders {exist} exist, answers named {sorted(ids)}")
        first = rec.first_201
        for body in rec.bodies[1:]:
            replays += 1
            if first is not None and body != first:
                problems.append(f"I4 key {key}: replay {body} != first answer {first}")
    return problems, {"keys": len(ledger.keys), "key_replays": replays}
