"""The JSON API under ``/api`` (SPEC §3): HTTP in, a use case call, JSON out."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request

from legacy_monolith import errors, shop
from legacy_monolith.db import Database
from legacy_monolith.serialize import dumps
from legacy_monolith.stock import RemoteStock
from legacy_monolith.validation import (
    parse_customer_filter,
    parse_new_customer,
    parse_page,
    parse_path_id,
    parse_reservation,
    parse_restock,
)

__all__ = ["DB_EXTENSION", "STOCK_EXTENSION", "api", "get_db", "get_stock", "json_response"]

DB_EXTENSION = "legacy_db"
STOCK_EXTENSION = "legacy_stock"
# Every successful stock write answers the item's version at the authority (SPEC §3).
VERSION_HEADER = "X-Stock-Version"

api = Blueprint("api", __name__, url_prefix="/api")


def get_db() -> Database:
    """The app's ``Database`` (wired once by ``create_app``)."""
    db: Database = current_app.extensions[DB_EXTENSION]
    return db


def get_stock() -> RemoteStock | None:
    """The remote stock authority, or None when the legacy itself is the authority."""
    stock: RemoteStock | None = current_app.extensions.get(STOCK_EXTENSION)
    return stock


def _versioned(response: Response, version: int) -> Response:
    response.headers[VERSION_HEADER] = str(version)
    return response


def json_response(obj: Any, status: int = 200) -> Response:
    """A contract JSON answer (orjson, ``Content-Type: application/json``)."""
    payload = obj if isinstance(obj, bytes) else dumps(obj)
    return Response(payload, status=status, content_type="application/json")


# --- customers ---------------------------------------------------------------------------


@api.get("/customers")
def list_customers() -> Response:
    """GET /api/customers: customers by id, paginated."""
    return json_response(shop.list_customers(get_db(), parse_page(request.args)))


@api.post("/customers")
def create_customer() -> Response:
    """POST /api/customers: 201 customer, 409 duplicate_email."""
    new = parse_new_customer(request.get_data())
    return json_response(shop.create_customer(get_db(), new), 201)


@api.get("/customers/<raw_id>")
def get_customer(raw_id: str) -> Response:
    """GET /api/customers/{id}."""
    customer_id = parse_path_id(raw_id, errors.customer_not_found(raw_id))
    return json_response(shop.get_customer(get_db(), customer_id))


# --- inventory ---------------------------------------------------------------------------


@api.get("/inventory")
def list_items() -> Response:
    """GET /api/inventory: items by sku, paginated."""
    return json_response(shop.list_items(get_db(), parse_page(request.args)))


@api.get("/inventory/<sku>")
def get_item(sku: str) -> Response:
    """GET /api/inventory/{sku}."""
    return json_response(shop.get_item(get_db(), sku))


@api.post("/inventory/<sku>/reservations")
def reserve(sku: str) -> Response:
    """POST /api/inventory/{sku}/reservations: 201 new, 200 repeat, 409 conflict or stock."""
    db = get_db()
    # An unknown sku is a 404 before the body is looked at.
    shop.require_item(db, sku)
    order_id, qty = parse_reservation(request.get_data())
    status, body, version = shop.reserve(db, sku, order_id, qty, get_stock())
    return _versioned(json_response(body, status), version)


@api.get("/inventory/<sku>/reservations")
def list_reservations(sku: str) -> Response:
    """GET /api/inventory/{sku}/reservations: the sku's reservations by order_id."""
    db = get_db()
    shop.require_item(db, sku)
    return json_response(shop.list_reservations(db, sku, parse_page(request.args)))


@api.delete("/inventory/<sku>/reservations/<raw_order_id>")
def release(sku: str, raw_order_id: str) -> Response:
    """DELETE /api/inventory/{sku}/reservations/{order_id}: 204, also when nothing is held."""
    db = get_db()
    shop.require_item(db, sku)
    if not raw_order_id.isascii() or not raw_order_id.isdigit():
        raise errors.path_not_found()
    # Any integer is fine: an order id that holds nothing is released as a no-op.
    version = shop.release(db, sku, min(int(raw_order_id), 2**63 - 1), get_stock())
    return _versioned(Response(status=204), version)


@api.post("/inventory/<sku>/restock")
def restock(sku: str) -> Response:
    """POST /api/inventory/{sku}/restock: 200 item with on_hand raised by qty."""
    db = get_db()
    shop.require_item(db, sku)
    qty = parse_restock(request.get_data())
    body, version = shop.restock(db, sku, qty, get_stock())
    return _versioned(json_response(body), version)


# --- orders ------------------------------------------------------------------------------


@api.get("/orders")
def list_orders() -> Response:
    """GET /api/orders[?customer_id=]: orders by id, paginated."""
    page = parse_page(request.args)
    customer_id = parse_customer_filter(request.args)
    return json_response(shop.list_orders(get_db(), page, customer_id))


@api.post("/orders")
def place_order() -> Response:
    """POST /api/orders: 201 order (or the replay of an Idempotency-Key)."""
    key = request.headers.get("Idempotency-Key") or None
    status, body = shop.place_order(get_db(), request.get_data(), key, get_stock())
    return json_response(body, status)


@api.get("/orders/<raw_id>")
def get_order(raw_id: str) -> Response:
    """GET /api/orders/{id}."""
    order_id = parse_path_id(raw_id, errors.order_not_found(raw_id))
    return json_response(shop.get_order(get_db(), order_id))


@api.post("/orders/<raw_id>/cancel")
def cancel_order(raw_id: str) -> Response:
    """POST /api/orders/{id}/cancel: 200 cancelled order, stock released."""
    order_id = parse_path_id(raw_id, errors.order_not_found(raw_id))
    return json_response(shop.cancel_order(get_db(), order_id, get_stock()))
