"""Fixtures of the inventory tests: its database on SQLite and on the real PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from extracted.inventory.adapters.database import Database


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A fresh, schema-ready inventory database on SQLite, then on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'db' / 'inventory.db'}"
    else:
        make: Callable[[], str] = request.getfixturevalue("make_pg_database")
        url = make()
    db = Database(url)
    db.create_schema()
    try:
        yield db
    finally:
        db.dispose()
