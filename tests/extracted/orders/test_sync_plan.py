"""Sync planning and the drift check (pure), plus applying a plan through a unit of work."""

from __future__ import annotations

from dataclasses import replace

from extracted.orders.domain.model import NEW_ID_BASE, Order, OrderLine, OrderStatus, Origin
from extracted.orders.service.sync import apply_sync, drift, load_legacy_range, plan_sync
from tests.extracted.orders.fakes import FakeDatabase


def _o(oid: int, status: OrderStatus = OrderStatus.PLACED, origin: Origin = Origin.LEGACY) -> Order:
    return Order(oid, 1, status, (OrderLine("A", 1, 100),), "2026-01-01T00:00:00Z", origin)


def test_plan_creates_updates_and_counts_the_rest() -> None:
    legacy = [
        _o(1),
        _o(2, OrderStatus.CANCELLED),
        _o(3),
        _o(4, OrderStatus.CANCELLED),
        _o(NEW_ID_BASE + 5),
    ]
    ours = {2: _o(2), 3: _o(3), 4: _o(4, origin=Origin.ORDERS)}
    plan = plan_sync(legacy, ours)
    assert [o.id for o in plan.create] == [1]
    assert [o.id for o in plan.update] == [2]
    assert plan.unchanged == 1 and plan.skipped == 2
    assert plan.summary() == "created=1 updated=1 unchanged=1 skipped=2"


async def test_apply_then_plan_again_changes_nothing() -> None:
    db = FakeDatabase()
    legacy = [_o(1), _o(2, OrderStatus.CANCELLED)]
    await apply_sync(plan_sync(legacy, await load_legacy_range(db.uow())), db.uow())
    assert db.tables.orders[2].status is OrderStatus.CANCELLED
    assert db.tables.outbox == []  # copies never emit events
    again = plan_sync(legacy, await load_legacy_range(db.uow()))
    assert (again.create, again.update, again.unchanged) == ([], [], 2)


def test_drift_names_missing_and_different_orders() -> None:
    legacy = [_o(1), _o(2), _o(3)]
    ours = [_o(1), replace(_o(2), status=OrderStatus.CANCELLED), _o(NEW_ID_BASE)]
    found = drift(legacy, ours)
    assert [(d.order_id, d.legacy is None, d.ours is None) for d in found] == [
        (2, False, False),
        (3, False, True),
        (NEW_ID_BASE, True, False),
    ]
    assert drift(legacy, legacy) == []
