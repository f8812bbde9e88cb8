"""The legacy-only HTML pages: shop home, account page, HTML 404."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from legacy_monolith.pages import money
from legacy_monolith.seed import seed
from tests.legacy.helpers import body, db_of


def test_money() -> None:
    assert money(0) == "$0.00"
    assert money(123456) == "$1,234.56"
    assert money(-5) == "-$0.05"


def test_home_lists_products_with_availability(shop: FlaskClient) -> None:
    shop.post("/api/orders", json={"customer_id": 1, "items": [{"sku": "SKU-A", "qty": 4}]})
    r = shop.get("/")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    html = r.get_data(as_text=True)
    assert 'data-sku="SKU-A" data-available="6"' in html and "6 available" in html
    assert "$2.50" in html and "Item SKU-B" in html
    assert 'data-sku="SKU-C" data-available="0"' in html and "out of stock" in html


def test_account_page_shows_orders(shop: FlaskClient) -> None:
    placed = body(
        shop.post("/api/orders", json={"customer_id": 1, "items": [{"sku": "SKU-A", "qty": 2}]})
    )
    cancelled = body(
        shop.post("/api/orders", json={"customer_id": 1, "items": [{"sku": "SKU-B", "qty": 1}]})
    )
    shop.post(f"/api/orders/{cancelled['id']}/cancel")
    html = shop.get("/customers/1").get_data(as_text=True)
    assert "Ada Lovelace" in html and "ada@example.com" in html
    assert f'data-order-id="{placed["id"]}" data-status="placed" data-total-cents="500"' in html
    assert (
        f'data-order-id="{cancelled["id"]}" data-status="cancelled" data-total-cents="100"' in html
    )
    assert "$5.00" in html and "$1.00" in html


def test_account_page_escapes_html(app: Flask, shop: FlaskClient) -> None:
    r = shop.post("/api/customers", json={"name": "<script>x</script>", "email": "x@example.com"})
    html = shop.get(f"/customers/{body(r)['id']}").get_data(as_text=True)
    assert "<script>x</script>" not in html and "&lt;script&gt;" in html


def test_unknown_customer_page_is_html_404(shop: FlaskClient) -> None:
    for path in ("/customers/999", "/customers/abc", "/no/such/page"):
        r = shop.get(path)
        assert r.status_code == 404, path
        assert r.headers["Content-Type"].startswith("text/html")
        assert "Not found" in r.get_data(as_text=True)


def test_pages_on_seeded_data(app: Flask, client: FlaskClient) -> None:
    seed(db_of(app))
    home = client.get("/").get_data(as_text=True)
    assert home.count("<tr data-sku=") == 200 and "SKU-0200" in home
    customer = body(client.get("/api/customers/1"))
    orders = body(client.get("/api/orders?customer_id=1&limit=500"))["items"]
    page = client.get("/customers/1").get_data(as_text=True)
    assert customer["name"] in page and customer["email"] in page
    assert page.count("data-order-id=") == len(orders) > 0
