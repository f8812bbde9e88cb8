"""The HTTP reader through httpx.MockTransport: pagination and malformed answers."""

from __future__ import annotations

import httpx
import pytest

from extracted.inventory.adapters.api_reader import PAGE, ApiReader, UnexpectedAnswer
from extracted.inventory.domain import ItemState

SKUS = [f"SKU-{n:04d}" for n in range(1, 603)]  # more than one page of items


def fake_legacy(request: httpx.Request) -> httpx.Response:
    limit = int(request.url.params["limit"])
    offset = int(request.url.params["offset"])
    parts = request.url.path.split("/")
    if request.url.path == "/api/inventory":
        rows = [
            {"sku": s, "name": f"n{s}", "price_cents": 100, "on_hand": 9, "reserved": 0}
            for s in SKUS
        ]
    elif request.url.path == "/api/orders":
        rows = [{"id": i, "status": "placed", "items": []} for i in range(1, 1203)]
    elif parts[-1] == "reservations":
        sku = parts[3]
        count = 3 if sku != "SKU-0002" else PAGE + 5  # one item with two pages
        rows = [{"sku": sku, "order_id": i, "qty": 1} for i in range(1, count + 1)]
    else:
        return httpx.Response(404, json={"error": "not_found", "detail": "no such resource"})
    page = rows[offset : offset + limit]
    return httpx.Response(200, json={"items": page, "total": len(rows), "generated_at": "x"})


def reader() -> ApiReader:
    return ApiReader("http://legacy", transport=httpx.MockTransport(fake_legacy))


def test_items_paginate_items_and_reservations_in_sku_order() -> None:
    with reader() as c:
        items = list(c.items())
        first_page, total = c.item_page(0)
        last_page, _ = c.item_page(600)
    assert [i.sku for i in items] == SKUS
    assert items[0] == ItemState("SKU-0001", "nSKU-0001", 100, 9, {1: 1, 2: 1, 3: 1})
    assert len(items[1].reservations) == PAGE + 5
    assert (len(first_page), total, [s.sku for s in last_page]) == (PAGE, 602, SKUS[600:])


def test_orders_are_read_whole() -> None:
    with reader() as c:
        assert [o["id"] for o in c.orders()] == list(range(1, 1203))


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(500, text="boom"),
        httpx.Response(200, json=[1, 2]),
        httpx.Response(200, text="<html>not json</html>"),
        httpx.Response(200, json={"items": [{"sku": 5}], "total": 1}),
        httpx.Response(200, json={"items": [], "total": "x"}),
    ],
)
def test_answers_outside_the_contract_raise(response: httpx.Response) -> None:
    transport = httpx.MockTransport(lambda _req: response)
    with ApiReader("http://legacy", transport=transport) as c, pytest.raises(UnexpectedAnswer):
        list(c.items())
