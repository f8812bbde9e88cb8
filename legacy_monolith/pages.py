"""The legacy-only HTML pages: the shop home and a customer's account page."""

from __future__ import annotations

from flask import Blueprint, render_template

from legacy_monolith import errors, shop
from legacy_monolith.api import get_db
from legacy_monolith.validation import parse_path_id

__all__ = ["money", "pages"]

pages = Blueprint("pages", __name__)


def money(cents: int) -> str:
    """Integer cents as ``$1,234.56`` (display only; the API always speaks cents)."""
    sign = "-" if cents < 0 else ""
    dollars, rest = divmod(abs(cents), 100)
    return f"{sign}${dollars:,}.{rest:02d}"


@pages.get("/")
def home() -> str:
    """Shop home: every product with its price and availability."""
    return render_template("home.html", items=shop.all_items(get_db()))


@pages.get("/customers/<raw_id>")
def customer_page(raw_id: str) -> str:
    """Account page: name, email and each order's id, status and total (HTML 404 if unknown)."""
    customer_id = parse_path_id(raw_id, errors.customer_not_found(raw_id))
    customer, orders = shop.customer_orders(get_db(), customer_id)
    return render_template("customer.html", customer=customer, orders=orders)
