"""Use cases against in-memory fakes of the ports: the saga's success and failure paths."""

from __future__ import annotations

import pytest

from extracted.contract.shapes import NEW_SERVICES_ID_FLOOR
from extracted.orders.domain.commands import CancelOrder, LineRequest, PlaceOrder
from extracted.orders.domain.errors import (
    DependencyUnavailable,
    IdempotencyKeyReused,
    InsufficientStock,
    NotFound,
    UnknownCustomer,
    UnknownSku,
)
from extracted.orders.domain.events import OrderCancelled, OrderPlaced
from extracted.orders.domain.idempotency import UNPARSABLE, KeyRecord
from extracted.orders.domain.model import Order, OrderLine, OrderStatus, Origin
from extracted.orders.service import handlers as uc
from extracted.orders.service.reconcile import reconcile
from tests.extracted.orders.fakes import (
    FakeCustomers,
    FakeDatabase,
    FakeInventory,
    FakeItem,
    FakeLegacyOrders,
)


@pytest.fixture
def db() -> FakeDatabase:
    return FakeDatabase()


@pytest.fixture
def inventory() -> FakeInventory:
    return FakeInventory({"A": FakeItem(100, 10), "B": FakeItem(250, 10), "C": FakeItem(1000, 10)})


@pytest.fixture
def customers() -> FakeCustomers:
    return FakeCustomers([1, 2])


def _cmd(*lines: tuple[str, int], customer: int = 1) -> PlaceOrder:
    return PlaceOrder(customer, tuple(LineRequest(s, q) for s, q in lines))


async def test_place_reserves_every_line_prices_it_and_publishes(
    db: FakeDatabase, inventory: FakeInventory, customers: FakeCustomers
) -> None:
    placed = await uc.place_order(_cmd(("B", 2), ("A", 3)), db.uow(), inventory, customers)
    order = placed.order
    assert order["id"] == NEW_SERVICES_ID_FLOOR and order["status"] == "placed"
    assert order["items"] == [
        {"sku": "B", "qty": 2, "price_cents": 250},
        {"sku": "A", "qty": 3, "price_cents": 100},
    ]
    assert order["total_cents"] == 800
    assert inventory.reservations == {
        ("B", NEW_SERVICES_ID_FLOOR): 2,
        ("A", NEW_SERVICES_ID_FLOOR): 3,
    }
    assert [type(e) for e in db.tables.outbox] == [OrderPlaced]
    second = await uc.place_order(_cmd(("C", 1)), db.uow(), inventory, customers)
    assert second.order["id"] == NEW_SERVICES_ID_FLOOR + 1


async def test_ids_stay_above_the_base_even_with_copied_legacy_orders(
    db: FakeDatabase, inventory: FakeInventory, customers: FakeCustomers
) -> None:
    await uc.place_order(_cmd(("A", 1)), db.uow(), inventory, customers)
    assert (await uc.get_order(NEW_SERVICES_ID_FLOOR, db.uow())).id == NEW_SERVICES_ID_FLOOR


async def test_unknown_customer_and_sku_are_refused_before_anything_is_stored(
    db: FakeDatabase, inventory: FakeInventory, customers: FakeCustomers
) -> None:
    with pytest.raises(UnknownCustomer) as exc:
        await uc.place_order(_cmd(("A", 1), customer=9), db.uow(), inventory, customers)
    assert exc.value.detail == "customer 9 does not exist"
    with pytest.raises(UnknownSku) as exc2:
        await uc.place_order(_cmd(("A", 1), ("ZZ", 1), ("YY", 1)), db.uow(), inventory, customers)
    assert exc2.value.detail == "sku ZZ does not exist"
    assert db.tables.orders == {} and inventory.reservations == {}


async def test_second_of_three_reservations_failing_releases_the_first(
    db: FakeDatabase, inventory: FakeInventory, customers: FakeCustomers
) -> None:
    inventory.fail_reserve_of = {"B"}
    with pytest.raises(InsufficientStock) as exc:
        await uc.place_order(_cmd(("A", 1), ("B", 1), ("C", 1)), db.uow(), inventory, customers)
    assert exc.value.detail == "insufficient stock for B"
    assert inventory.reservations == {}
    assert ("reserve", "C") not in inventory.calls  # the saga stopped at the failure
    (order,) = db.tables.orders.values()
    assert order.status is OrderStatus.FAILED
    assert db.tables.outbox == []
    page, total = await uc.list_orders(db.uow(), customer_id=None, limit=50, offset=0)
    assert (page, total) == ([], 0)


async def test_stock_short_before_reserving_is_409_without_a_stored_order(
    db: FakeDatabase, inventory: FakeInventory, customers: FakeCustomers
) -> None:
    with pytest.raises(InsufficientStock):
        await uc.place_order(_cmd(("A", 1), ("B", 11)), db.uow(), inventory, customers)
    assert db.tables.orders == {} and inventory.reservations == {}


async def test_inventory_dying_mid_order_leaves_nothing_reserved_after_reconcile(
    db: FakeDatabase, inventory: FakeInventory, customers: FakeCustomers
) -> None:
    inventory.die_after_reserves = 1  # the 1st reservation succeeds, then inventory is gone
    with pytest.raises(DependencyUnavailable):
        await uc.place_order(_cmd(("A", 1), ("B", 1), ("C", 1)), db.uow(), inventory, customers)
    # Release failed too: the order waits, hidden, for reconciliation.
    (order,) = db.tables.orders.values()
    assert order.status is OrderStatus.RELEASING
    assert inventory.reservations == {("A", order.id): 1}
    assert await reconcile(db.uow(), inventory, older_than=0.0) == 0  # still down
    inventory.down = False
    assert await reconcile(db.uow(), inventory, older_than=0.0) == 1
    assert inventory.reservations == {}
    assert db.tables.orders[order.id].status is OrderStatus.FAILED


async def test_reconcile_spares_young_pending_orders_and_releases_old_ones(
    db: FakeDatabase, inventory: FakeInventory, customers: FakeCustomers
) -> None:
    from extracted.orders.domain.model import Order, OrderLine

    with db.uow() as uow:
        for oid, created in ((NEW_SERVICES_ID_FLOOR, 100.0), (NEW_SERVICES_ID_FLOOR + 1, 195.0)):
            uow.orders.add(
                Order(
                    oid, 1, OrderStatus.PENDING, (OrderLine("A", 2, 100),), "x", created_at=created
                )
            )
        uow.commit()
    await inventory.reserve("A", NEW_SERVICES_ID_FLOOR, 2)
    await inventory.reserve("A", NEW_SERVICES_ID_FLOOR + 1, 2)
    released = await reconcile(db.uow(), inventory, older_than=10.0, clock=lambda: 200.0)
    assert released == 1
    assert inventory.reservations == {("A", NEW_SERVICES_ID_FLOOR + 1): 2}
    assert db.tables.orders[NEW_SERVICES_ID_FLOOR + 1].status is OrderStatus.PENDING


async def test_a_saga_whose_order_was_reconciled_meanwhile_answers_503(
    db: FakeDatabase, inventory: FakeInventory, customers: FakeCustomers
) -> None:
    original = inventory.reserve
    reconciled = False

    async def reserve_then_reconcile(sku: str, order_id: int, qty: int) -> None:
        nonlocal reconciled
        await original(sku, order_id, qty)
        if not reconciled:  # reconciliation runs between the 1st and the 2nd reservation
            reconciled = True
            await reconcile(db.uow(), inventory, older_than=-1.0)

    inventory.reserve = reserve_then_reconcile  # type: ignore[method-assign]
    with pytest.raises(DependencyUnavailable):
        await uc.place_order(_cmd(("A", 1), ("B", 1)), db.uow(), inventory, customers)
    assert inventory.reservations == {}
    assert db.tables.outbox == []


async def test_dead_customers_api_is_dependency_unavailable(
    db: FakeDatabase, inventory: FakeInventory, customers: FakeCustomers
) -> None:
    customers.down = True
    with pytest.raises(DependencyUnavailable):
        await uc.place_order(_cmd(("A", 1)), db.uow(), inventory, customers)


async def test_cancel_releases_and_publishes_once(
    db: FakeDatabase, inventory: FakeInventory, customers: FakeCustomers
) -> None:
    placed = await uc.place_order(_cmd(("A", 2), ("B", 1)), db.uow(), inventory, customers)
    oid = placed.order["id"]
    cancelled = await uc.cancel_order(CancelOrder(oid), db.uow(), inventory)
    assert cancelled.status is OrderStatus.CANCELLED and inventory.reservations == {}
    again = await uc.cancel_order(CancelOrder(oid), db.uow(), inventory)
    assert again.to_json() == cancelled.to_json()
    assert [type(e) for e in db.tables.outbox] == [OrderPlaced, OrderCancelled]
    with pytest.raises(NotFound) as exc:
        await uc.cancel_order(CancelOrder(5), db.uow(), inventory)
    assert exc.value.detail == "order 5 not found"


async def test_cancel_with_inventory_down_keeps_the_order_placed(
    db: FakeDatabase, inventory: FakeInventory, customers: FakeCustomers
) -> None:
    placed = await uc.place_order(_cmd(("A", 2)), db.uow(), inventory, customers)
    inventory.down = True
    with pytest.raises(DependencyUnavailable):
        await uc.cancel_order(CancelOrder(placed.order["id"]), db.uow(), inventory)
    assert (await uc.get_order(placed.order["id"], db.uow())).status is OrderStatus.PLACED
    # Nothing changed: no cancel left to finish, the stock still held, no event.
    assert db.tables.cancel_requests == {}
    assert inventory.reservations == {("A", placed.order["id"]): 2}
    inventory.down = False
    assert await uc.finish_cancels(db.uow(), inventory, older_than=0, clock=lambda: 1e12) == 0
    assert [type(e) for e in db.tables.outbox] == [OrderPlaced]


async def test_a_cancel_that_fails_half_way_is_finished_by_reconciliation(
    db: FakeDatabase, inventory: FakeInventory, customers: FakeCustomers
) -> None:
    placed = await uc.place_order(_cmd(("A", 2), ("B", 1)), db.uow(), inventory, customers)
    oid = placed.order["id"]
    inventory.time_out_after_releases = 1  # A is released, then B times out
    with pytest.raises(DependencyUnavailable):
        await uc.cancel_order(CancelOrder(oid), db.uow(), inventory, clock=lambda: 100.0)
    assert inventory.reservations == {("B", oid): 1}
    assert list(db.tables.cancel_requests) == [oid]
    # Too young: a cancel may still be running elsewhere.
    assert await uc.finish_cancels(db.uow(), inventory, older_than=30, clock=lambda: 110.0) == 0
    still_down = await uc.finish_cancels(db.uow(), inventory, older_than=30, clock=lambda: 200.0)
    assert still_down == 0 and list(db.tables.cancel_requests) == [oid]
    inventory.time_out_after_releases = None
    assert await uc.finish_cancels(db.uow(), inventory, older_than=30, clock=lambda: 200.0) == 1
    assert inventory.reservations == {} and db.tables.cancel_requests == {}
    assert (await uc.get_order(oid, db.uow())).status is OrderStatus.CANCELLED
    assert [type(e) for e in db.tables.outbox] == [OrderPlaced, OrderCancelled]


async def test_a_cancel_request_of_an_order_cancelled_elsewhere_is_dropped(
    db: FakeDatabase, inventory: FakeInventory, customers: FakeCustomers
) -> None:
    placed = await uc.place_order(_cmd(("A", 2)), db.uow(), inventory, customers)
    oid = placed.order["id"]
    with db.uow() as uow:
        uow.orders.request_cancel(oid, 1.0)
        uow.orders.set_status(oid, [OrderStatus.PLACED], OrderStatus.CANCELLED, Origin.LEGACY)
        uow.commit()
    assert await uc.finish_cancels(db.uow(), inventory, older_than=0, clock=lambda: 5.0) == 0
    assert db.tables.cancel_requests == {}
    assert [type(e) for e in db.tables.outbox] == [OrderPlaced]  # the legacy published its own


async def test_events_carry_the_idempotency_key_of_the_order(
    db: FakeDatabase, inventory: FakeInventory, customers: FakeCustomers
) -> None:
    body = {"customer_id": 1, "items": [{"sku": "A", "qty": 1}]}
    placed = await uc.place_order(
        _cmd(("A", 1)), db.uow(), inventory, customers, key="k", body=body
    )
    await uc.cancel_order(CancelOrder(placed.order["id"]), db.uow(), inventory)
    expected = KeyRecord("k", body, placed.order)
    assert [e.idempotency for e in db.tables.outbox] == [expected, expected]
    assert db.tables.keys["k"].order_id == placed.order["id"]


async def test_a_miss_in_the_legacy_range_is_read_repaired(
    db: FakeDatabase, inventory: FakeInventory
) -> None:
    theirs = Order(
        7, 1, OrderStatus.PLACED, (OrderLine("A", 2, 100),), "2026-01-01T00:00:00Z", Origin.LEGACY
    )
    legacy = FakeLegacyOrders([theirs])
    got = await uc.get_order(7, db.uow(), legacy)
    assert got.to_json() == theirs.to_json()
    assert db.tables.orders[7].origin is Origin.LEGACY  # stored: asked once only
    assert (await uc.get_order(7, db.uow(), legacy)).to_json() == theirs.to_json()
    assert legacy.calls == [("get", 7)]
    assert db.tables.outbox == []  # a copy is never published
    with pytest.raises(NotFound):
        await uc.get_order(8, db.uow(), legacy)
    # Ids of the new services are never asked for.
    with pytest.raises(NotFound):
        await uc.get_order(NEW_SERVICES_ID_FLOOR + 5, db.uow(), legacy)
    assert legacy.calls == [("get", 7), ("get", 8)]
    # The legacy down: we cannot know, so not 404 but dependency_unavailable (503).
    legacy.down = True
    with pytest.raises(DependencyUnavailable) as exc:
        await uc.get_order(9, db.uow(), legacy)
    assert exc.value.detail == "legacy unavailable"


async def test_cancelling_a_legacy_order_releases_it_and_publishes(
    db: FakeDatabase, inventory: FakeInventory
) -> None:
    theirs = Order(
        7, 1, OrderStatus.PLACED, (OrderLine("A", 2, 100),), "2026-01-01T00:00:00Z", Origin.LEGACY
    )
    inventory.reservations[("A", 7)] = 2  # held through the stock authority by the legacy
    cancelled = await uc.cancel_order(
        CancelOrder(7), db.uow(), inventory, FakeLegacyOrders([theirs])
    )
    assert cancelled.status is OrderStatus.CANCELLED and inventory.reservations == {}
    (event,) = db.tables.outbox
    assert isinstance(event, OrderCancelled) and event.order.id == 7
    assert db.tables.orders[7].origin is Origin.ORDERS


async def test_idempotency_key_replays_and_refuses_other_bodies(
    db: FakeDatabase, inventory: FakeInventory, customers: FakeCustomers
) -> None:
    body = {"customer_id": 1, "items": [{"sku": "A", "qty": 1}]}
    first = await uc.place_order(_cmd(("A", 1)), db.uow(), inventory, customers, key="k", body=body)
    replay = await uc.find_answer(
        "k", {"items": [{"qty": 1, "sku": "A"}], "customer_id": 1}, db.uow()
    )
    assert replay is not None and replay.replayed and replay.order == first.order
    assert await uc.find_answer("other", body, db.uow()) is None
    for different in ({"customer_id": 2, "items": body["items"]}, UNPARSABLE):
        with pytest.raises(IdempotencyKeyReused):
            await uc.find_answer("k", different, db.uow())


async def test_losing_an_idempotency_race_undoes_the_order_and_replays_the_winner(
    db: FakeDatabase, inventory: FakeInventory, customers: FakeCustomers
) -> None:
    body = {"customer_id": 1, "items": [{"sku": "A", "qty": 1}]}
    first = await uc.place_order(_cmd(("A", 1)), db.uow(), inventory, customers, key="k", body=body)
    # A second process that checked the key before the first stored it:
    second = await uc.place_order(
        _cmd(("A", 1)), db.uow(), inventory, customers, key="k", body=body
    )
    assert second.replayed and second.order == first.order
    assert inventory.reservations == {("A", first.order["id"]): 1}
    page, total = await uc.list_orders(db.uow(), customer_id=None, limit=50, offset=0)
    assert total == 1


async def test_list_filters_by_customer_and_pages(
    db: FakeDatabase, inventory: FakeInventory, customers: FakeCustomers
) -> None:
    for customer in (1, 2, 1, 1):
        await uc.place_order(_cmd(("A", 1), customer=customer), db.uow(), inventory, customers)
    page, total = await uc.list_orders(db.uow(), customer_id=1, limit=2, offset=1)
    assert total == 3 and [o.id for o in page] == [
        NEW_SERVICES_ID_FLOOR + 2,
        NEW_SERVICES_ID_FLOOR + 3,
    ]
