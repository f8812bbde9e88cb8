"""The SQLAlchemy repository, idempotency store, outbox and unit of work on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from extracted.events import Event
from extracted.orders.adapters.db import make_engine, normalise_url
from extracted.orders.adapters.orm import create_tables, outbox
from extracted.orders.adapters.unit_of_work import SqlUnitOfWork
from extracted.orders.domain.commands import CancelOrder, LineRequest, PlaceOrder
from extracted.orders.domain.errors import DependencyUnavailable
from extracted.orders.domain.model import NEW_ID_BASE, Order, OrderLine, OrderStatus, Origin
from extracted.orders.service import orders as uc
from extracted.orders.service.sync import apply_sync, load_legacy_range, plan_sync
from extracted.orders.service.unit_of_work import KeyAlreadyStored, StoredAnswer
from tests.extracted.orders.fakes import FakeCustomers, FakeInventory, FakeItem


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'deep' / 'orders.db'}"
    else:
        make: Callable[[], str] = request.getfixturevalue("make_pg_database")
        url = make()
    eng = make_engine(url)
    create_tables(eng)
    try:
        yield eng
    finally:
        eng.dispose()


def _order(oid: int, status: OrderStatus = OrderStatus.PLACED, created: float = 0.0) -> Order:
    return Order(
        oid,
        4,
        status,
        (OrderLine("SKU-0002", 2, 150), OrderLine("SKU-0001", 1, 99)),
        "2026-11-25T12:00:00Z",
        Origin.LEGACY if oid < NEW_ID_BASE else Origin.ORDERS,
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
        assert uow.orders.next_id() == NEW_ID_BASE
        uow.orders.add(_order(999_999_999))
        uow.orders.add(_order(NEW_ID_BASE + 41))
        uow.commit()
    with uow:
        assert uow.orders.next_id() == NEW_ID_BASE + 42


def test_status_changes_are_conditional(engine: sa.Engine) -> None:
    uow = SqlUnitOfWork(engine)
    with uow:
        uow.orders.add(_order(NEW_ID_BASE, OrderStatus.PENDING, created=10.0))
        uow.commit()
    with uow:
        assert [o.id for o in uow.orders.stale([OrderStatus.PENDING], 11.0)] == [NEW_ID_BASE]
        assert uow.orders.stale([OrderStatus.PENDING], 10.0) == []
        assert uow.orders.list_visible(None, 50, 0) == ([], 0)
        assert not uow.orders.set_status(
            NEW_ID_BASE, [OrderStatus.PLACED], OrderStatus.CANCELLED, Origin.ORDERS
        )
        assert uow.orders.set_status(
            NEW_ID_BASE, [OrderStatus.PENDING], OrderStatus.PLACED, Origin.ORDERS
        )
        uow.commit()
    with uow:
        page, total = uow.orders.list_visible(4, 50, 0)
        assert total == 1 and page[0].status is OrderStatus.PLACED


def test_put_overwrites_lines(engine: sa.Engine) -> None:
    uow = SqlUnitOfWork(engine)
    with uow:
        uow.orders.put(_order(5))
        changed = Order(
            5, 4, OrderStatus.CANCELLED, (OrderLine("X", 3, 7),), "2026-11-25T12:00:00Z"
        )
        uow.orders.put(changed)
        uow.commit()
    with uow:
        got = uow.orders.get(5)
        assert got is not None and got.to_json() == changed.to_json()
        assert list(uow.orders.below(NEW_ID_BASE)) == [5]


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


def test_publish_writes_versioned_envelopes_to_the_outbox(engine: sa.Engine) -> None:
    from extracted.orders.domain.events import OrderPlaced

    uow = SqlUnitOfWork(engine)
    with uow:
        uow.publish([OrderPlaced(_order(NEW_ID_BASE))])
        uow.commit()
    with engine.connect() as conn:
        (payload,) = conn.execute(sa.select(outbox.c.payload)).scalars()
    event = Event.from_json(payload)
    assert event.type == "order.placed" and event.origin == "orders" and event.version == 1
    assert event.data == {"order": _order(NEW_ID_BASE).to_json()}
    assert orjson.loads(payload)["data"]["order"]["items"][0]["sku"] == "SKU-0002"


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


async def test_sync_apply_is_idempotent_on_the_real_database(engine: sa.Engine) -> None:
    legacy = [_order(1), _order(2, OrderStatus.CANCELLED)]
    uow = SqlUnitOfWork(engine)
    first = plan_sync(legacy, await load_legacy_range(uow))
    await apply_sync(first, uow)
    second = plan_sync(legacy, await load_legacy_range(uow))
    assert (len(first.create), second.unchanged, second.create, second.update) == (2, 2, [], [])
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar() == 0


async def test_database_down_is_dependency_unavailable(tmp_path: Path) -> None:
    eng = make_engine("postgresql://nobody@127.0.0.1:1/none")
    try:
        with pytest.raises(DependencyUnavailable) as exc:
            await uc.get_order(1, SqlUnitOfWork(eng))
        assert exc.value.detail == "database unavailable"
    finally:
        eng.dispose()
