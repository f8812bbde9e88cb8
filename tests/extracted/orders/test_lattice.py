"""The order lattice against a reference model: any mix of redelivered and reordered
placed/cancelled copies converges to "cancelled iff any copy says cancelled, lines as placed".

Checked on the pure rule, on the use case with the in-memory unit of work, and on the real
SQLAlchemy repository (SQLite), with random batch boundaries (one transaction per batch).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extracted.contract.shapes import NEW_SERVICES_ID_FLOOR
from extracted.orders.adapters.db import make_engine
from extracted.orders.adapters.orm import create_tables, metadata
from extracted.orders.adapters.unit_of_work import SqlUnitOfWork
from extracted.orders.domain.events import OrderChangedElsewhere
from extracted.orders.domain.lattice import merged
from extracted.orders.domain.model import Order, OrderLine, OrderStatus, Origin
from extracted.orders.service.replication import apply_changes_now
from tests.extracted.orders.fakes import FakeDatabase

IDS = [1, 2, 3, 999_999_999, NEW_SERVICES_ID_FLOOR, NEW_SERVICES_ID_FLOOR + 1]
STATUSES = [OrderStatus.PLACED, OrderStatus.CANCELLED]

lines = st.lists(
    st.builds(
        OrderLine,
        sku=st.sampled_from(["SKU-0001", "SKU-0002", "SKU-0003"]),
        qty=st.integers(1, 5),
        price_cents=st.integers(0, 10_000),
    ),
    min_size=1,
    max_size=3,
    unique_by=lambda line: line.sku,
).map(tuple)


@st.composite
def scenarios(
    draw: st.DrawFn,
) -> tuple[dict[int, Order], dict[int, Order], list[Order], list[Order]]:
    """(each id's placed data, what we hold at the start, the copies sent, as delivered)."""
    placed = {
        i: Order(
            i,
            draw(st.integers(1, 50)),
            OrderStatus.PLACED,
            draw(lines),
            "2026-01-01T00:00:00Z",
            Origin.LEGACY,
        )
        for i in IDS
    }
    # Orders we already hold: ours (placed or a saga in flight) or earlier copies.
    held: dict[int, Order] = {}
    for i in draw(st.lists(st.sampled_from(IDS), unique=True)):
        status = draw(st.sampled_from([*STATUSES, OrderStatus.PENDING]))
        held[i] = replace(placed[i], status=status, origin=Origin.ORDERS)
    sent = [
        replace(placed[i], status=s)
        for i, s in draw(
            st.lists(st.tuples(st.sampled_from(IDS), st.sampled_from(STATUSES)), max_size=25)
        )
    ]
    # At-least-once delivery: some copies come twice, and the order is any permutation.
    again = draw(st.lists(st.sampled_from(sent), max_size=10)) if sent else []
    delivered = draw(st.permutations(sent + again))
    return placed, held, sent, delivered


def model(placed: dict[int, Order], held: dict[int, Order], sent: list[Order]) -> dict[int, tuple]:
    """The expected end state: (status, lines) per id."""
    out = {i: (o.status, o.lines) for i, o in held.items()}
    for i in {o.id for o in sent}:
        if i in held and held[i].status is OrderStatus.PENDING:
            continue  # a saga in flight is never touched
        cancelled = any(o.status is OrderStatus.CANCELLED for o in sent if o.id == i)
        if i in held and held[i].status is OrderStatus.CANCELLED:
            cancelled = True
        out[i] = (OrderStatus.CANCELLED if cancelled else OrderStatus.PLACED, placed[i].lines)
    return out


def state(orders: dict[int, Order]) -> dict[int, tuple]:
    return {i: (o.status, o.lines) for i, o in orders.items()}


@given(scenarios())
def test_the_pure_rule_converges_to_the_model(scenario) -> None:  # type: ignore[no-untyped-def]
    placed, held, sent, delivered = scenario
    now = dict(held)
    for copy in delivered:
        after = merged(now.get(copy.id), copy)
        if after is not None:
            now[copy.id] = after
    assert state(now) == model(placed, held, sent)


@given(scenarios(), st.lists(st.integers(1, 5), max_size=10))
def test_applying_batches_through_the_unit_of_work_converges(scenario, cuts) -> None:  # type: ignore[no-untyped-def]
    placed, held, sent, delivered = scenario
    db = FakeDatabase()
    db.tables.orders.update(held)
    for batch in _batches(delivered, cuts):
        apply_changes_now([OrderChangedElsewhere(o) for o in batch], db.uow())
    assert state(db.tables.orders) == model(placed, held, sent)
    assert db.tables.outbox == []  # applying the other side's changes never publishes


@pytest.fixture(scope="module")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    path: Path = tmp_path_factory.mktemp("lattice") / "orders.db"
    eng = make_engine(f"sqlite:///{path}")
    create_tables(eng)
    try:
        yield eng
    finally:
        eng.dispose()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scenarios(), st.lists(st.integers(1, 5), max_size=10))
def test_the_sql_repository_converges_to_the_model(
    sqlite_engine: sa.Engine, scenario, cuts
) -> None:  # type: ignore[no-untyped-def]
    placed, held, sent, delivered = scenario
    with sqlite_engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
    uow = SqlUnitOfWork(sqlite_engine)
    with uow:
        for order in held.values():
            uow.orders.add(order)
        uow.commit()
    for batch in _batches(delivered, cuts):
        apply_changes_now([OrderChangedElsewhere(o) for o in batch], uow)
    with uow:
        stored = {i: o for i in IDS if (o := uow.orders.get(i)) is not None}
    assert state(stored) == model(placed, held, sent)


def _batches(items: list[Order], cuts: list[int]) -> Iterator[list[Order]]:
    """`items` split into consecutive batches of the sizes in `cuts` (the rest in one)."""
    start = 0
    for size in cuts:
        if start >= len(items):
            return
        yield items[start : start + size]
        start += size
    if start < len(items):
        yield items[start:]
