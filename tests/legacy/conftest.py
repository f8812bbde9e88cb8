"""Fixtures for the legacy monolith: one app per test, on SQLite and on real PostgreSQL."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from legacy_monolith.app import create_app
from tests.legacy.helpers import add_customer, add_items, db_of


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: a SQLite file under tmp_path, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/db/legacy.db"
    # Looked up lazily so the SQLite half runs even where PostgreSQL is missing.
    make = request.getfixturevalue("make_pg_database")
    url: str = make()
    return url


@contextlib.contextmanager
def _app_on(url: str) -> Iterator[Flask]:
    application = create_app(url)
    application.config["TESTING"] = True
    try:
        yield application
    finally:
        db_of(application).dispose()


def _fill_small_shop(app: Flask) -> None:
    add_customer(app, 1, "ada@example.com", "Ada Lovelace")
    add_items(app, ("SKU-A", 250, 10), ("SKU-B", 100, 5), ("SKU-C", 999, 0))


@pytest.fixture
def app(database_url: str) -> Iterator[Flask]:
    """The legacy app on `database_url`; its engine is disposed at teardown."""
    with _app_on(database_url) as application:
        yield application


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """Flask's test client on `app`."""
    return app.test_client()


@pytest.fixture
def shop(app: Flask, client: FlaskClient) -> FlaskClient:
    """A small shop: customer 1, items A (250c, 10), B (100c, 5), C (999c, 0)."""
    _fill_small_shop(app)
    return client


@pytest.fixture
def light_shop(tmp_path: Path) -> Iterator[FlaskClient]:
    """The same small shop on SQLite only: for checks that never reach the database's logic
    (validation, routing, HEAD), where a second PostgreSQL run would add time, not coverage."""
    with _app_on(f"sqlite:///{tmp_path}/light.db") as application:
        _fill_small_shop(application)
        yield application.test_client()
