"""Helpers for legacy tests: reach the app's database directly (for set-up and checks)."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Flask
from werkzeug.test import TestResponse

from legacy_monolith.api import DB_EXTENSION
from legacy_monolith.db import Customer, Database, Item, utcnow


def db_of(app: Flask) -> Database:
    """The app's Database."""
    db: Database = app.extensions[DB_EXTENSION]
    return db


def add_items(app: Flask, *items: tuple[str, int, int]) -> None:
    """Insert items (sku, price_cents, on_hand) directly: the API has no way to create them."""
    with db_of(app).write() as s:
        for sku, price, on_hand in items:
            s.add(Item(sku=sku, name=f"Item {sku}", price_cents=price, on_hand=on_hand))


def add_customer(app: Flask, customer_id: int, email: str, name: str = "Test Customer") -> None:
    """Insert a customer with a chosen id directly."""
    with db_of(app).write() as s:
        s.add(Customer(id=customer_id, name=name, email=email, created_at=utcnow()))


def body(response: TestResponse) -> Any:
    """The parsed JSON body, after checking the contract's Content-Type."""
    assert response.headers["Content-Type"] == "application/json", response.headers
    return orjson.loads(response.get_data())
