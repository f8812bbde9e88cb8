"""The read copy's consumer rule against a reference model (hypothesis), with in-memory fakes.

The legacy (the stock authority) makes a history of writes, each giving the item a new version
and state. The copy receives every version's `inventory.changed` event at least once, with
duplicates, in any order, interleaved with confirmations of some writes (our forwarded writes,
answered with their version). The copy must never show a lower version after a higher one, must
show exactly the event's state whenever it applies one, must show a confirmed write at once
unless the stream already moved past it, and must end at the newest version's state.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from extracted.events import inventory_changed, order_event
from extracted.inventory.domain import Item, ItemState
from extracted.inventory.service import read_copy
from extracted.inventory.service.read_copy import Applied, apply_changed, handle_event
from tests.extracted.inventory.fakes import FakeDatabase

NOW = datetime(2026, 1, 1, 12, 0, 0)
SKU = "SKU-0001"


@dataclass(frozen=True)
class Write:
    """One write of the legacy: ("reserve", order, qty) | ("release", order, 0) | ("restock", 0, qty)."""

    kind: str
    order_id: int
    qty: int


def history(writes: list[Write]) -> list[ItemState]:
    """The reference model: states[v] is the legacy's item after write v (states[0]: initial)."""
    states = [ItemState(SKU, "Widget", 250, 10, {})]
    for w in writes:
        s = states[-1]
        res = dict(s.reservations)
        if w.kind == "reserve":
            res[w.order_id] = w.qty
            states.append(replace(s, reservations=res))
        elif w.kind == "release":
            res.pop(w.order_id, None)
            states.append(replace(s, reservations=res))
        else:
            states.append(replace(s, on_hand=s.on_hand + w.qty))
    return states


writes_st = st.lists(
    st.one_of(
        st.builds(Write, st.just("reserve"), st.integers(1, 4), st.integers(1, 3)),
        st.builds(Write, st.just("release"), st.integers(1, 4), st.just(0)),
        st.builds(Write, st.just("restock"), st.just(0), st.integers(1, 5)),
    ),
    min_size=1,
    max_size=12,
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Write], list[tuple[str, int]]]:
    writes = draw(writes_st)
    n = len(writes)
    events = [("event", v) for v in range(1, n + 1)]
    events += draw(st.lists(st.sampled_from(events), max_size=n))  # duplicates
    confirms = [("confirm", v) for v in draw(st.sets(st.integers(1, n)))]
    steps = draw(st.permutations(events + confirms))
    return writes, list(steps)


def confirm(write: Write, version: int, states: list[ItemState], db: FakeDatabase) -> bool:
    if write.kind == "reserve":
        return read_copy.confirm_reserve(SKU, write.order_id, write.qty, version, db)
    if write.kind == "release":
        return read_copy.confirm_release(SKU, write.order_id, version, db)
    return read_copy.confirm_restock(SKU, states[version].on_hand, version, db)


def shows(write: Write, version: int, states: list[ItemState], item: Item) -> bool:
    if write.kind == "reserve":
        return item.reservations[write.order_id].qty == write.qty
    if write.kind == "release":
        return write.order_id not in item.reservations
    return item.on_hand == states[version].on_hand


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_any_delivery_order_converges_on_the_newest_state_and_never_goes_back(
    scenario: tuple[list[Write], list[tuple[str, int]]],
) -> None:
    writes, steps = scenario
    states = history(writes)
    db = FakeDatabase(Item(SKU, "Widget", 250, 10))  # the backfilled copy, version 0
    seen_version = 0
    for kind, version in steps:
        if kind == "event":
            outcome = apply_changed(states[version], version, db, lambda: NOW)
            item = db.store[SKU]
            if outcome == Applied.APPLIED:
                assert (item.state(), item.version) == (states[version], version)
        else:
            write = writes[version - 1]
            before = db.store[SKU]
            newer = version > before.version and version >= before.floor
            applied = confirm(write, version, states, db)
            item = db.store[SKU]
            assert applied == newer
            if applied:
                assert shows(write, version, states, item)
        assert item.version >= seen_version, "went back to an older version"
        seen_version = item.version
        assert item.state() == states[item.version] or item.floor > item.version
    final = db.store[SKU]
    assert (final.state(), final.version) == (states[-1], len(writes))
    assert db.outbox == [] and db.versions == []  # no echo


def test_an_unknown_sku_is_inserted_at_the_events_version() -> None:
    db = FakeDatabase()
    state = ItemState("SKU-0777", "New", 5, 3, {9: 1})
    assert apply_changed(state, 4, db, lambda: NOW) == Applied.INSERTED
    assert (db.store["SKU-0777"].state(), db.store["SKU-0777"].version) == (state, 4)
    assert apply_changed(state, 4, db, lambda: NOW) == Applied.STALE


def changed(version: int, origin: str = "legacy", on_hand: int = 12):  # type: ignore[no-untyped-def]
    item = {"sku": SKU, "name": "Widget", "price_cents": 250, "on_hand": on_hand}
    item |= {"reserved": 0, "available": on_hand}
    return inventory_changed(item, [], origin, version)


def test_handle_event_applies_only_the_legacys_stock_events_while_it_is_the_authority() -> None:
    db = FakeDatabase(Item(SKU, "Widget", 250, 10))
    placed = {
        "id": 1,
        "customer_id": 1,
        "status": "placed",
        "items": [{"sku": SKU, "qty": 1, "price_cents": 250}],
        "total_cents": 250,
        "placed_at": "2026-01-01T00:00:00Z",
    }
    assert handle_event(order_event(placed, "legacy"), "legacy", db).startswith("skipped")
    assert handle_event(changed(5, origin="inventory"), "legacy", db).startswith("skipped")
    assert handle_event(changed(5), "inventory", db).startswith("ignored")
    assert db.store[SKU].on_hand == 10 and db.commits == 0
    assert handle_event(changed(5), "legacy", db) == "applied"
    assert (db.store[SKU].on_hand, db.store[SKU].version) == (12, 5)
