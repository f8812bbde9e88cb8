"""Lists: `{items, total, generated_at}`, ordering, `limit` (default 50, 1..500) and `offset`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.contract.helpers import (
    SEEDED_CUSTOMERS,
    SEEDED_ORDERS,
    SEEDED_SKUS,
    Shop,
    assert_customer,
    assert_item,
    assert_list,
    assert_order,
    assert_recent,
    assert_reservation,
    expect_error,
    expect_json,
)

# (path, ordering key, object check, minimum total from the seed data)
LISTS: dict[str, tuple[str, str, Callable[[Any], None], int]] = {
    "customers": ("/api/customers", "id", assert_customer, SEEDED_CUSTOMERS),
    "inventory": ("/api/inventory", "sku", assert_item, len(SEEDED_SKUS)),
    "orders": ("/api/orders", "id", assert_order, SEEDED_ORDERS),
    # {sku} is the first sku of seeded order 1, which is placed, so it has reservations.
    "reservations": ("/api/inventory/{sku}/reservations", "order_id", assert_reservation, 1),
}
KINDS = list(LISTS)


def list_path(shop: Shop, kind: str) -> str:
    """The path of list `kind` on this target (skips when the target lacks it)."""
    path = LISTS[kind][0]
    shop.require(path.split("/")[2])
    if "{sku}" in path:
        path = path.format(sku=shop.order(1)["items"][0]["sku"])
    return path


def fetch(shop: Shop, kind: str, **params: Any) -> dict[str, Any]:
    path = list_path(shop, kind)
    check = LISTS[kind][2]
    body = expect_json(shop.get(path, params=params), 200)
    assert_list(body, check)
    return body


@pytest.mark.parametrize("kind", KINDS)
def test_default_page_is_50_ordered_with_total(shop: Shop, kind: str) -> None:
    _, key, _, seeded = LISTS[kind]
    body = fetch(shop, kind)
    assert body["total"] >= seeded
    assert len(body["items"]) == min(50, body["total"])
    keys = [obj[key] for obj in body["items"]]
    assert keys == sorted(keys) and len(set(keys)) == len(keys), f"not ordered by {key}: {keys}"
    assert_recent(body["generated_at"])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("limit", [1, 7, 500])
def test_limit_bounds_the_page(shop: Shop, kind: str, limit: int) -> None:
    body = fetch(shop, kind, limit=limit)
    assert len(body["items"]) == min(limit, body["total"])


@pytest.mark.parametrize("kind", KINDS)
def test_pages_concatenate_to_the_whole_ordered_list(shop: Shop, kind: str) -> None:
    _, key, _, _ = LISTS[kind]
    whole = fetch(shop, kind, limit=21)
    pieces: list[Any] = []
    for offset in (0, 7, 14):
        page = fetch(shop, kind, limit=7, offset=offset)
        assert page["total"] == whole["total"]
        pieces.extend(page["items"])
    assert [o[key] for o in pieces] == [o[key] for o in whole["items"]]
    assert pieces == whole["items"]


@pytest.mark.parametrize("kind", KINDS)
def test_offset_at_or_past_the_end_gives_an_empty_page(shop: Shop, kind: str) -> None:
    total = fetch(shop, kind, limit=1)["total"]
    for offset in (total, total + 1, 10**6, 10**30):
        body = fetch(shop, kind, offset=offset)
        assert body["items"] == [] and body["total"] == total


@pytest.mark.parametrize("kind", KINDS)
def test_last_page_is_partial(shop: Shop, kind: str) -> None:
    total = fetch(shop, kind, limit=1)["total"]
    body = fetch(shop, kind, limit=10, offset=max(total - 3, 0))
    assert len(body["items"]) == min(3, total)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "501"},
        {"limit": "-1"},
        {"limit": "abc"},
        {"limit": "1.5"},
        {"limit": ""},
        {"offset": "-1"},
        {"offset": "abc"},
        {"offset": "2.0"},
    ],
    ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()),
)
def test_bad_limit_or_offset_is_422(shop: Shop, kind: str, params: dict[str, str]) -> None:
    expect_error(shop.get(list_path(shop, kind), params=params), 422, "validation_error")


def test_inventory_lists_exactly_the_seeded_skus(shop: Shop) -> None:
    body = fetch(shop, "inventory", limit=500)
    assert body["total"] == len(SEEDED_SKUS)
    assert [i["sku"] for i in body["items"]] == SEEDED_SKUS


def test_orders_list_starts_with_the_seeded_ids(shop: Shop) -> None:
    body = fetch(shop, "orders", limit=500)
    assert [o["id"] for o in body["items"]] == list(range(1, 501))
    body = fetch(shop, "orders", limit=500, offset=500)
    assert [o["id"] for o in body["items"]] == list(range(501, 1001))


def test_customers_list_starts_with_the_seeded_ids(shop: Shop) -> None:
    body = fetch(shop, "customers", limit=SEEDED_CUSTOMERS)
    assert [c["id"] for c in body["items"]] == list(range(1, SEEDED_CUSTOMERS + 1))


def test_generated_at_is_utc_seconds(shop: Shop) -> None:
    for kind in KINDS:
        if shop.supports(LISTS[kind][0].split("/")[2]):
            assert_recent(fetch(shop, kind, limit=1)["generated_at"])
