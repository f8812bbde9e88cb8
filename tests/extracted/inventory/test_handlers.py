"""Use cases with in-memory fakes: no I/O."""

from __future__ import annotations

from datetime import datetime

import pytest

from extracted.inventory.domain import (
    InsufficientStock,
    Item,
    ItemNotFound,
    ItemState,
    ReservationConflict,
    ReservationMade,
    ReservationReleased,
    Restocked,
)
from extracted.inventory.domain.backfill import Progress
from extracted.inventory.domain.commands import Release, Reserve, Restock
from extracted.inventory.service import handlers
from extracted.inventory.service.backfill import backfill
from extracted.inventory.service.check import check_round, handoff_problems, settle
from extracted.inventory.service.views import item_json
from tests.extracted.inventory.fakes import FakeDatabase, FakeLegacy

NOW = datetime(2026, 1, 1, 12, 0, 0)


def clock() -> datetime:
    return NOW


def db(on_hand: int = 10) -> FakeDatabase:
    return FakeDatabase(Item("SKU-0001", "Widget", 250, on_hand))


def test_reserve_commits_once_and_a_repeat_commits_nothing() -> None:
    fake = db()
    first = handlers.reserve(Reserve("SKU-0001", 1, 3), fake, clock)
    again = handlers.reserve(Reserve("SKU-0001", 1, 3), fake, clock)
    assert first.created and not again.created
    assert (first.version, again.version) == (1, 1)
    assert fake.commits == 1
    assert fake.outbox == [ReservationMade("SKU-0001", 1, 3)]
    assert fake.store["SKU-0001"].reserved == 3


def test_failed_reservations_change_nothing() -> None:
    fake = db(5)
    handlers.reserve(Reserve("SKU-0001", 1, 2), fake, clock)
    with pytest.raises(ReservationConflict):
        handlers.reserve(Reserve("SKU-0001", 1, 3), fake, clock)
    with pytest.raises(InsufficientStock):
        handlers.reserve(Reserve("SKU-0001", 2, 4), fake, clock)
    with pytest.raises(ItemNotFound):
        handlers.reserve(Reserve("SKU-9999", 2, 1), fake, clock)
    assert fake.commits == 1 and fake.store["SKU-0001"].reserved == 2
    assert fake.store["SKU-0001"].version == 1


def test_release_and_restock_record_their_events_each_at_the_next_version() -> None:
    fake = db()
    handlers.reserve(Reserve("SKU-0001", 1, 3), fake, clock)
    assert handlers.release(Release("SKU-0001", 1), fake, clock) == handlers.ReleaseResult(True, 2)
    # Nothing to release: still a success, at the current version, and no change.
    assert handlers.release(Release("SKU-0001", 1), fake, clock) == handlers.ReleaseResult(False, 2)
    item = handlers.restock(Restock("SKU-0001", 4), fake, clock)
    assert (item.on_hand, item.version) == (14, 3)
    assert fake.outbox[1:] == [ReservationReleased("SKU-0001", 1, 3), Restocked("SKU-0001", 4)]
    assert fake.versions == [("SKU-0001", 1), ("SKU-0001", 2), ("SKU-0001", 3)]
    assert fake.commits == 3


def test_reads_page_items_and_reservations() -> None:
    fake = FakeDatabase(*(Item(f"SKU-{n:04d}", "x", 1, 100) for n in (3, 1, 2)))
    for order_id in (9, 4, 6):
        handlers.reserve(Reserve("SKU-0002", order_id, 1), fake, clock)
    items, total = handlers.list_items(2, 1, fake)
    assert [i.sku for i in items] == ["SKU-0002", "SKU-0003"] and total == 3
    page, count = handlers.list_reservations("SKU-0002", 2, 1, fake)
    assert [r.order_id for r in page] == [6, 9] and count == 3
    assert handlers.get_item("SKU-0002", fake).reserved == 3
    with pytest.raises(ItemNotFound):
        handlers.list_reservations("SKU-0404", 50, 0, fake)


def test_views_follow_the_contract_key_order() -> None:
    item = Item("SKU-0001", "Widget", 250, 10)
    item.reserve(2, 1, NOW)
    assert list(item_json(item)) == [
        "sku",
        "name",
        "price_cents",
        "on_hand",
        "reserved",
        "available",
    ]


# --- backfill ---------------------------------------------------------------------------------


def legacy_of(count: int) -> FakeLegacy:
    return FakeLegacy(
        *(ItemState(f"SKU-{n:04d}", f"n{n}", 100 + n, 10, {n: 1}) for n in range(1, count + 1)),
        page_size=2,
    )


def test_backfill_creates_missing_items_with_reservations_then_is_complete() -> None:
    fake, legacy = FakeDatabase(), legacy_of(5)
    result = backfill(legacy, fake, clock)
    assert (result.counts.items_created, result.counts.reservations_created) == (5, 5)
    assert result.progress == Progress("SKU-0005", 5, True)
    assert fake.store["SKU-0003"].state() == legacy.by_sku["SKU-0003"]
    assert fake.store["SKU-0003"].version == 0
    assert fake.outbox == []  # applied, never published
    again = backfill(legacy, fake, clock)
    assert again.already_complete and legacy.pages_read == [0, 2, 4]


def test_backfill_resumes_after_an_outage_at_the_first_page_not_written() -> None:
    fake, legacy = FakeDatabase(), legacy_of(7)
    legacy.fail_after = 2
    with pytest.raises(ConnectionError):
        backfill(legacy, fake, clock)
    assert sorted(fake.store) == ["SKU-0001", "SKU-0002", "SKU-0003", "SKU-0004"]
    assert fake.progress["backfill"] == Progress("SKU-0004", 4, False)
    legacy.fail_after = None
    result = backfill(legacy, fake, clock)
    assert legacy.pages_read == [0, 2, 4, 6]  # no page read twice
    assert result.counts.items_created == 3 and result.progress.complete
    assert len(fake.store) == 7


def test_backfill_never_overwrites_an_item_it_holds() -> None:
    ours = Item("SKU-0002", "n2", 102, 99)
    ours.reserve(77, 1, NOW)
    fake, legacy = FakeDatabase(ours), legacy_of(3)
    result = backfill(legacy, fake, clock)
    assert (result.counts.items_created, result.counts.items_existing) == (2, 1)
    assert fake.store["SKU-0002"].state() == ItemState("SKU-0002", "n2", 102, 99, {77: 1})


# --- checks -----------------------------------------------------------------------------------


def order(order_id: int, status: str, sku: str, qty: int) -> dict[str, object]:
    return {"id": order_id, "status": status, "items": [{"sku": sku, "qty": qty}]}


def test_check_round_uses_both_sides_orders_merged_for_our_copy() -> None:
    fake, legacy = FakeDatabase(), legacy_of(2)
    backfill(legacy, fake, clock)
    legacy.orders_list = [order(1, "placed", "SKU-0001", 1), order(2, "placed", "SKU-0002", 1)]
    assert check_round(legacy, fake, lambda: None) == []
    # The orders service already cancelled order 2: our copy still holds it, the legacy too.
    lines = check_round(legacy, fake, lambda: [order(2, "cancelled", "SKU-0002", 1)])
    assert lines == ["inventory: SKU-0002 order 2: no placed order, reservation of 1"]


def test_handoff_problems_name_everything_in_flight() -> None:
    fake, legacy = FakeDatabase(), legacy_of(2)
    backfill(legacy, fake, clock)
    assert handoff_problems("inventory", legacy, fake, 0, {"legacy": 0, "inventory": 0}) == []
    fake.store["SKU-0001"].floor = 3  # a mirrored write whose event was not applied yet
    fake.store["SKU-0002"].on_hand = 9
    problems = handoff_problems("inventory", legacy, fake, 2, {"legacy": 1, "inventory": 0})
    assert problems == [
        "item SKU-0002 on_hand: legacy=10 inventory=9",
        "inventory outbox: 2 event(s) not published yet",
        "event bus group 'legacy': 1 event(s) delivered, not acked",
        "item SKU-0001: a forwarded write at version 3 awaits its event (copy at version 0)",
    ]
    # Towards legacy the floor does not matter (this service is the authority then).
    assert len(handoff_problems("legacy", legacy, fake, 0, {})) == 1


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize(
    "rounds,drift,in_flight",
    [
        ([[]], [], []),  # clean at once
        ([["a"], ["a"], []], [], []),  # lag that caught up
        ([["a", "b"]] * 30, ["a", "b"], []),  # the same findings all along: drift
        ([["a", "x1"], ["a", "x2"], ["a", "x3"]] * 10, ["a"], ["x3"]),  # x keeps changing
        ([[f"x{i}"] for i in range(30)], [], ["x20"]),  # always different: in flight, not drift
    ],
)
def test_settle_reports_only_what_held_for_the_whole_settle_time(
    rounds: list[list[str]], drift: list[str], in_flight: list[str]
) -> None:
    clock, answers = FakeClock(), iter(rounds)
    verdict = settle(lambda: next(answers), 10.0, clock, clock.sleep, interval=0.5)
    assert (verdict.drift, verdict.in_flight) == (drift, in_flight)
    assert clock.now <= 10.0


def test_settle_zero_seconds_is_one_round() -> None:
    verdict = settle(lambda: ["a"], 0.0, FakeClock())
    assert (verdict.drift, verdict.rounds) == (["a"], 1)


def test_concurrent_backfills_never_move_the_progress_back() -> None:
    fake, items = FakeDatabase(), list(legacy_of(6).items())
    fake.progress["backfill"] = Progress("SKU-0004", 4, False)

    class Racing(FakeLegacy):
        def item_page(self, offset: int) -> tuple[list[ItemState], int]:
            page = super().item_page(offset)
            fake.progress["backfill"] = Progress("SKU-0006", 6, True)  # another run finished
            return page

    result = backfill(Racing(*items, page_size=2), fake, clock)
    assert result.progress == fake.progress["backfill"] == Progress("SKU-0006", 6, True)
