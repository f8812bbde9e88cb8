"""The SQLAlchemy repository, idempotency store, outbox and unit of work on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from extracted.contract.shapes import NEW_SERVICES_ID_FLOOR
from extracted.events import Event
from extracted.orders.adapters.db import make_engine, normalise_url
from extracted.orders.adapters.orm import create_tables, outbox
from extracted.orders.adapters.unit_of_work import SqlUnitOfWork
from extracted.orders.domain.commands import CancelOrder, LineRequest, PlaceOrder
from extracted.orders.domain.errors import DependencyUnavailable
from extracted.orders.domain.model import Order, OrderLine, OrderStatus, Origin
from extracted.orders.service import handlers as uc
from extracted.orders.service.unit_of_work import KeyAlreadyStored, StoredAnswer, SyncProgress
from tests.extracted.orders.fakes import FakeCustomers, FakeInventory, FakeItem


def _order(oid: int, status: OrderStatus = OrderStatus.PLACED, created: float = 0.0) -> Order:
    return Order(
        oid,
        4,
        status,
        (OrderLine("SKU-0002", 2, 150), OrderLine("SKU-0001", 1, 99)),
        "2026-11-25T12:00:00Z",
        Origin.LEGACY if oid < NEW_SERVICES_ID_FLOOR else Origin.ORDERS,
        created_at=created,
    )


def test_urls_are_rewritten_for_psycopg3() -> None:
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"


def test_sqlite_is_wal_and_creates_the_parent_directory(tmp_path: Path) -> None:
    eng = make_engine(f"sqlite:///{tmp_path / 'a' / 'b' / 'o.db'}")
    try:
        with eng.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10000
    finally:
        eng.dispose()
    assert (tmp_path / "a" / "b").is_dir()


def test_round_trip_keeps_line_order_and_rolls_back_without_commit(engine: sa.Engine) -> None:
    uow = SqlUnitOfWork(engine)
    with uow:
        uow.orders.add(_order(7))
        uow.commit()
    with uow:
        uow.orders.add(_order(8))  # no commit
    with uow:
        got = uow.orders.get(7)
        assert got is not None and got.to_json() == _order(7).to_json()
        assert got.origin is Origin.LEGACY
        assert uow.orders.get(8) is None


def test_ids_are_allocated_above_the_base_only(engine: sa.Engine) -> None:
    uow = SqlUnitOfWork(engine)
    with uow:
        assert uow.orders.next_id() == NEW_SERVICES_ID_FLOOR
        uow.orders.add(_order(999_999_999))
        uow.orders.add(_order(NEW_SERVICES_ID_FLOOR + 41))
        uow.commit()
    with uow:
        assert uow.orders.next_id() == NEW_SERVICES_ID_FLOOR + 42


def test_status_changes_are_conditional(engine: sa.Engine) -> None:
    uow = SqlUnitOfWork(engine)
    with uow:
        uow.orders.add(_order(NEW_SERVICES_ID_FLOOR, OrderStatus.PENDING, created=10.0))
        uow.commit()
    with uow:
        assert [o.id for o in uow.orders.stale([OrderStatus.PENDING], 11.0)] == [
            NEW_SERVICES_ID_FLOOR
        ]
        assert uow.orders.stale([OrderStatus.PENDING], 10.0) == []
        assert uow.orders.list_visible(None, 50, 0) == ([], 0)
        assert not uow.orders.set_status(
            NEW_SERVICES_ID_FLOOR, [OrderStatus.PLACED], OrderStatus.CANCELLED, Origin.ORDERS
        )
        assert uow.orders.set_status(
            NEW_SERVICES_ID_FLOOR, [OrderStatus.PENDING], OrderStatus.PLACED, Origin.ORDERS
        )
        uow.commit()
    with uow:
        page, total = uow.orders.list_visible(4, 50, 0)
        assert total == 1 and page[0].status is OrderStatus.PLACED


def test_merge_inserts_missing_orders_and_only_ever_cancels(engine: sa.Engine) -> None:
    uow = SqlUnitOfWork(engine)
    mine = _order(NEW_SERVICES_ID_FLOOR + 1)
    with uow:
        uow.orders.add(mine)
        uow.orders.add(_order(NEW_SERVICES_ID_FLOOR + 2, OrderStatus.PENDING))
        uow.commit()
    cancelled_copy = Order(
        5, 4, OrderStatus.CANCELLED, (OrderLine("X", 3, 7),), "2026-11-25T12:00:00Z", Origin.LEGACY
    )
    with uow:
        changed = uow.orders.merge(
            [
                _order(5),  # missing: inserted with its lines
                cancelled_copy,  # cancelled wins; the lines stay the first copy's
                _order(5),  # a late placed copy changes nothing
                # The legacy cancelled one of ours: status only, our lines and ids are kept.
                Order(NEW_SERVICES_ID_FLOOR + 1, 4, OrderStatus.CANCELLED, (), "x", Origin.LEGACY),
                _order(
                    NEW_SERVICES_ID_FLOOR + 2, OrderStatus.CANCELLED
                ),  # a saga in flight: untouched
            ]
        )
        uow.commit()
    assert [(o.id, o.status) for o in changed] == [
        (5, OrderStatus.PLACED),
        (5, OrderStatus.CANCELLED),
        (NEW_SERVICES_ID_FLOOR + 1, OrderStatus.CANCELLED),
    ]
    with uow:
        five = uow.orders.get(5)
        assert five is not None and five.status is OrderStatus.CANCELLED
        assert five.lines == _order(5).lines and five.origin is Origin.LEGACY
        ours = uow.orders.get(NEW_SERVICES_ID_FLOOR + 1)
        assert ours is not None and ours.status is OrderStatus.CANCELLED
        assert ours.lines == mine.lines and ours.origin is Origin.LEGACY
        pending = uow.orders.get(NEW_SERVICES_ID_FLOOR + 2)
        assert pending is not None and pending.status is OrderStatus.PENDING
        assert uow.orders.merge([_order(5), cancelled_copy]) == []  # idempotent
        assert uow.orders.ids_in([OrderStatus.PENDING]) == {NEW_SERVICES_ID_FLOOR + 2}


def test_sync_state_only_moves_forward(engine: sa.Engine) -> None:
    uow = SqlUnitOfWork(engine)
    with uow:
        assert uow.sync_state.get("job") == SyncProgress(0, False)
        uow.sync_state.advance("job", 500, False)
        uow.sync_state.advance("job", 200, False)  # a slower concurrent run
        uow.commit()
    with uow:
        assert uow.sync_state.get("job") == SyncProgress(500, False)
        uow.sync_state.advance("job", 1000, True)
        uow.sync_state.advance("job", 700, False)
        uow.commit()
    with uow:
        assert uow.sync_state.get("job") == SyncProgress(1000, True)
        uow.sync_state.reset("job")
        uow.commit()
    with uow:
        assert uow.sync_state.get("job") == SyncProgress(0, False)


def test_cancel_requests_are_recorded_once_and_dropped(engine: sa.Engine) -> None:
    uow = SqlUnitOfWork(engine)
    with uow:
        uow.orders.request_cancel(7, 10.0)
        uow.orders.request_cancel(7, 20.0)  # kept as first recorded
        uow.orders.request_cancel(8, 30.0)
        uow.commit()
    with uow:
        assert uow.orders.cancel_requests(15.0) == [7]
        assert uow.orders.cancel_requests(float("inf")) == [7, 8]
        uow.orders.drop_cancel_request(7)
        uow.commit()
    with uow:
        assert uow.orders.cancel_requests(float("inf")) == [8]


def test_idempotency_keys_are_unique_and_purged(engine: sa.Engine) -> None:
    uow = SqlUnitOfWork(engine)
    answer = StoredAnswer("k", {"a": [1, True]}, {"id": 1}, 100.0)
    with uow:
        uow.keys.store(answer)
        uow.commit()
    with uow:
        with pytest.raises(KeyAlreadyStored):
            uow.keys.store(answer)
        # The transaction stays usable after the conflict (savepoint).
        assert uow.keys.find("k") == answer
        assert uow.keys.purge(100.0) == 0
        assert uow.keys.purge(100.5) == 1
        uow.commit()
    with uow:
        assert uow.keys.find("k") is None


def test_keys_are_learned_once_and_found_by_order(engine: sa.Engine) -> None:
    uow = SqlUnitOfWork(engine)
    mine = StoredAnswer("k", {"b": 1}, {"id": NEW_SERVICES_ID_FLOOR}, 100.0, NEW_SERVICES_ID_FLOOR)
    with uow:
        uow.keys.store(mine)
        theirs = StoredAnswer("k", {"b": 2}, {"id": 9}, 50.0)
        assert not uow.keys.learn(theirs)  # a key already known is never overwritten
        assert uow.keys.learn(StoredAnswer("legacy-key", {"b": 3}, {"id": 9}, 50.0, 9))
        uow.commit()
    with uow:
        assert uow.keys.find("k") == mine
        learned = uow.keys.for_order(9)
        assert learned is not None and learned.key == "legacy-key" and learned.order_id == 9
        assert uow.keys.for_order(NEW_SERVICES_ID_FLOOR) == mine
        assert uow.keys.for_order(12345) is None


def test_tables_of_an_older_release_gain_the_new_column(tmp_path: Path) -> None:
    eng = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        with eng.begin() as conn:
            conn.exec_driver_sql(
                "CREATE TABLE idempotency_keys (key TEXT PRIMARY KEY, request TEXT NOT NULL, "
                "response TEXT NOT NULL, created_at FLOAT NOT NULL)"
            )
            conn.exec_driver_sql("INSERT INTO idempotency_keys VALUES ('old', '{}', '{}', 1.0)")
        create_tables(eng)
        create_tables(eng)  # idempotent
        with SqlUnitOfWork(eng) as uow:
            old = uow.keys.find("old")
            assert old is not None and old.order_id is None
    finally:
        eng.dispose()


def test_publish_writes_versioned_envelopes_to_the_outbox(engine: sa.Engine) -> None:
    from extracted.orders.domain.events import OrderPlaced

    uow = SqlUnitOfWork(engine)
    with uow:
        uow.publish([OrderPlaced(_order(NEW_SERVICES_ID_FLOOR))])
        uow.commit()
    with engine.connect() as conn:
        (payload,) = conn.execute(sa.select(outbox.c.payload)).scalars()
    event = Event.from_json(payload)
    assert event.type == "order.placed" and event.origin == "orders" and event.version == 2
    assert event.aggregate == f"order:{NEW_SERVICES_ID_FLOOR}" and event.aggregate_version == 1
    assert event.data == {"order": _order(NEW_SERVICES_ID_FLOOR).to_json()}
    assert event.idempotency_key is None
    assert orjson.loads(payload)["data"]["order"]["items"][0]["sku"] == "SKU-0002"


def test_events_of_orders_placed_under_a_key_carry_it(engine: sa.Engine) -> None:
    from extracted.orders.domain.events import OrderCancelled, OrderPlaced
    from extracted.orders.domain.idempotency import KeyRecord

    order = _order(NEW_SERVICES_ID_FLOOR)
    key = KeyRecord("key-1", {"customer_id": 4}, order.to_json())
    uow = SqlUnitOfWork(engine)
    with uow:
        uow.publish([OrderPlaced(order, key), OrderCancelled(order.cancelled(), key)])
        uow.commit()
    with engine.connect() as conn:
        payloads = conn.execute(sa.select(outbox.c.payload).order_by(outbox.c.id)).scalars()
        placed, cancelled = (Event.from_json(p) for p in payloads)
    assert (placed.type, cancelled.type) == ("order.placed", "order.cancelled")
    assert cancelled.aggregate_version == 2
    for event in (placed, cancelled):
        assert event.idempotency_key == "key-1"
        assert event.data["idempotency"] == {
            "key": "key-1",
            "request": {"customer_id": 4},
            "response": order.to_json(),
        }


async def test_use_cases_end_to_end_on_the_real_database(engine: sa.Engine) -> None:
    inventory = FakeInventory({"A": FakeItem(100, 5), "B": FakeItem(7, 5)})
    customers = FakeCustomers([1])
    cmd = PlaceOrder(1, (LineRequest("A", 2), LineRequest("B", 1)))
    placed = await uc.place_order(cmd, SqlUnitOfWork(engine), inventory, customers)
    oid = placed.order["id"]
    got = await uc.get_order(oid, SqlUnitOfWork(engine))
    assert got.to_json() == placed.order
    await uc.cancel_order(CancelOrder(oid), SqlUnitOfWork(engine), inventory)
    assert inventory.reservations == {}
    with engine.connect() as conn:
        types = list(conn.execute(sa.select(outbox.c.type).order_by(outbox.c.id)).scalars())
    assert types == ["order.placed", "order.cancelled"]
    # Concurrent placements get distinct ids (serialised allocation).
    many = await asyncio.gather(
        *(
            uc.place_order(
                PlaceOrder(1, (LineRequest("B", 1),)), SqlUnitOfWork(engine), inventory, customers
            )
            for _ in range(4)
        )
    )
    assert len({p.order["id"] for p in many}) == 4


async def test_database_down_is_dependency_unavailable(tmp_path: Path) -> None:
    eng = make_engine("postgresql://nobody@127.0.0.1:1/none")
    try:
        with pytest.raises(DependencyUnavailable) as exc:
            await uc.get_order(1, SqlUnitOfWork(eng))
        assert exc.value.detail == "database unavailable"
    finally:
        eng.dispose()
