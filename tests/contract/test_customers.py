"""Customers (legacy only): list, get, create, duplicate email, validation (SPEC §3)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.contract.helpers import (
    SEEDED_CUSTOMERS,
    Shop,
    assert_customer,
    assert_list,
    assert_recent,
    expect_error,
    expect_json,
)


@pytest.fixture(autouse=True)
def _customers_only(shop: Shop) -> None:
    shop.require("customers")


def new_email() -> str:
    return f"contract-{uuid.uuid4().hex[:12]}@example.com"


def customers_total(shop: Shop) -> int:
    return expect_json(shop.get("/api/customers", params={"limit": 1}), 200)["total"]


def test_seeded_customer_1(shop: Shop) -> None:
    body = expect_json(shop.get("/api/customers/1"), 200)
    assert_customer(body)
    assert body["id"] == 1
    assert body["email"] == "customer1@example.com"


def test_seeded_customers_have_their_emails(shop: Shop) -> None:
    body = expect_json(shop.get("/api/customers", params={"limit": SEEDED_CUSTOMERS}), 200)
    assert_list(body, assert_customer)
    assert [c["email"] for c in body["items"]] == [
        f"customer{n}@example.com" for n in range(1, SEEDED_CUSTOMERS + 1)
    ]


def test_get_matches_the_list_entry(shop: Shop) -> None:
    listed = expect_json(shop.get("/api/customers", params={"limit": 5, "offset": 10}), 200)
    for customer in listed["items"]:
        assert expect_json(shop.get(f"/api/customers/{customer['id']}"), 200) == customer


def test_create_customer(shop: Shop) -> None:
    before = customers_total(shop)
    email = new_email()
    r = shop.post("/api/customers", json={"name": "Ada Lovelace", "email": email})
    created = expect_json(r, 201)
    assert_customer(created)
    assert created["name"] == "Ada Lovelace" and created["email"] == email
    assert created["id"] > SEEDED_CUSTOMERS
    assert created["id"] in shop.target.new_ids, "ids come from the implementation's own range"
    assert_recent(created["created_at"])
    assert expect_json(shop.get(f"/api/customers/{created['id']}"), 200) == created
    # The newest customer has the highest id, so it is last in the id-ordered list.
    assert customers_total(shop) == before + 1
    last = expect_json(shop.get("/api/customers", params={"limit": 1, "offset": before}), 200)
    assert last["items"] == [created]


def test_created_ids_increase(shop: Shop) -> None:
    first = expect_json(shop.post("/api/customers", json={"name": "A", "email": new_email()}), 201)
    second = expect_json(shop.post("/api/customers", json={"name": "B", "email": new_email()}), 201)
    assert second["id"] > first["id"]


def test_duplicate_email_is_409(shop: Shop) -> None:
    email = new_email()
    expect_json(shop.post("/api/customers", json={"name": "First", "email": email}), 201)
    before = customers_total(shop)
    r = shop.post("/api/customers", json={"name": "Second", "email": email})
    expect_error(r, 409, "duplicate_email")
    assert customers_total(shop) == before


def test_duplicate_of_a_seeded_email_is_409(shop: Shop) -> None:
    r = shop.post("/api/customers", json={"name": "Impostor", "email": "customer2@example.com"})
    expect_error(r, 409, "duplicate_email")


INVALID_BODIES: list[Any] = [
    {},
    {"name": "No Email"},
    {"email": "no-name@example.com"},
    {"name": "", "email": "empty-name@example.com"},
    {"name": "Empty Email", "email": ""},
    {"name": 5, "email": "int-name@example.com"},
    {"name": True, "email": "bool-name@example.com"},
    {"name": "Null Email", "email": None},
    {"name": "List Email", "email": ["a@example.com"]},
    # Legacy reference: an email must look like local@domain.
    {"name": "Not An Email", "email": "not-an-email"},
    [],
    ["name", "email"],
    "name",
    42,
    None,
]


@pytest.mark.parametrize("body", INVALID_BODIES, ids=repr)
def test_invalid_body_is_422(shop: Shop, body: Any) -> None:
    before = customers_total(shop)
    expect_error(shop.post("/api/customers", json=body), 422, "validation_error")
    assert customers_total(shop) == before


@pytest.mark.parametrize(
    "raw", [b"{", b"", b"{'name': 'x'}", b'{"name": "x", "email": }'], ids=repr
)
def test_malformed_json_is_422(shop: Shop, raw: bytes) -> None:
    before = customers_total(shop)
    expect_error(shop.post_raw("/api/customers", raw), 422, "validation_error")
    assert customers_total(shop) == before
