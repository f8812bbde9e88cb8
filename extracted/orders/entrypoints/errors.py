"""The one place where errors become HTTP statuses and JSON bodies."""

from __future__ import annotations

import orjson
from aiohttp import web

from extracted.orders.domain import errors as e

STATUS: dict[type[e.OrdersError], int] = {
    e.ValidationError: 422,
    e.NotFound: 404,
    e.MethodNotAllowed: 405,
    e.UnknownCustomer: 404,
    e.UnknownSku: 422,
    e.InsufficientStock: 409,
    e.ReservationConflict: 409,
    e.IdempotencyKeyReused: 422,
    e.DependencyUnavailable: 503,
}


def json_response(obj: object, status: int = 200) -> web.Response:
    """A contract JSON answer: compact orjson, keys in insertion order."""
    return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json")


def error_response(exc: e.OrdersError) -> web.Response:
    """`{"error": code, "detail": text}` with the error's status."""
    status = STATUS.get(type(exc), 500)
    return json_response({"error": exc.code, "detail": exc.detail}, status)
