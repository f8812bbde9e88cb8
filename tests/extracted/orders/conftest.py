"""Fixtures of the orders tests: the orders database on SQLite and PostgreSQL, real buses."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from extracted.orders.adapters.db import make_engine
from extracted.orders.adapters.orm import create_tables

# The same real buses as the events tests (a SQLite log, a Redis stream): `bus_url`, `make_bus`.
from tests.extracted.events.conftest import bus_url, make_bus  # noqa: F401


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def orders_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty orders database: a SQLite file or a PostgreSQL database (dropped after)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'deep' / 'orders.db'}"
    make: Callable[[], str] = request.getfixturevalue("make_pg_database")
    return make()


@pytest.fixture
def engine(orders_db_url: str) -> Iterator[sa.Engine]:
    """An engine on `orders_db_url` with the tables created."""
    eng = make_engine(orders_db_url)
    create_tables(eng)
    try:
        yield eng
    finally:
        eng.dispose()
