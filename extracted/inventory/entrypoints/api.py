"""The aiohttp HTTP API: SPEC §3's inventory endpoints, /healthz, JSON 404/405.

Handlers only translate HTTP to use-case calls and back; the use cases are synchronous
(SQLAlchemy), so they run in worker threads via `asyncio.to_thread`, never on the loop. Stock
writes go through the stock port (`STOCK`): the local adapter as the stock authority, the
legacy's HTTP API otherwise. Reads always answer from this service's own tables.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from aiohttp import web

from extracted.contract import errors
from extracted.contract.errors import ContractError
from extracted.contract.http import error_middleware, health_response, json_response
from extracted.contract.shapes import list_body
from extracted.contract.validation import parse_page
from extracted.inventory.adapters.database import Database
from extracted.inventory.adapters.legacy_stock import VERSION_HEADER
from extracted.inventory.entrypoints import validation
from extracted.inventory.service import handlers
from extracted.inventory.service.ports import StockAnswer, StockPort, UnitOfWorkFactory
from extracted.inventory.service.views import item_json, reservation_json

log = logging.getLogger("extracted.inventory.api")

DATABASE = web.AppKey("database", Database)
UOW = web.AppKey[UnitOfWorkFactory]("uow_factory")
STOCK = web.AppKey[StockPort]("stock")

_T = TypeVar("_T")


def _database_outage(exc: Exception) -> ContractError | None:
    """A database that does not answer is a 503, not a 500."""
    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError | sa.exc.TimeoutError):
        log.warning("database unavailable: %s", exc)
        return errors.dependency_unavailable("database")
    return None


async def _call(request: web.Request, fn: Callable[..., Any], *args: Any) -> Any:
    """Run a blocking use case in a worker thread (tables made first if start-up could not)."""
    db = request.app[DATABASE]

    def call() -> Any:
        db.ensure_schema()
        return fn(*args)

    return await asyncio.to_thread(call)


def _uow(request: web.Request) -> UnitOfWorkFactory:
    return request.app[UOW]


async def list_items(request: web.Request) -> web.Response:
    """GET /api/inventory."""
    page = parse_page(request.query)
    items, total = await _call(request, handlers.list_items, page.limit, page.offset, _uow(request))
    return json_response(list_body([item_json(i) for i in items], total))


async def get_item(request: web.Request) -> web.Response:
    """GET /api/inventory/{sku}."""
    item = await _call(request, handlers.get_item, request.match_info["sku"], _uow(request))
    return json_response(item_json(item))


async def _validated(request: web.Request, parse: Callable[[], _T]) -> _T:
    """`parse()`, but an unknown sku answers 404 before a bad body or query (legacy order)."""
    try:
        return parse()
    except ContractError:
        sku = request.match_info["sku"]
        # Only the error path pays for this look-up; a valid request finds out in its use case.
        await _call(request, handlers.get_item, sku, _uow(request))
        raise


def stock_response(answer: StockAnswer) -> web.Response:
    """A stock write's answer, with the item's version as `X-Stock-Version` when known."""
    if answer.body is None:
        resp = web.Response(status=answer.status)
    else:
        resp = web.Response(body=answer.body, status=answer.status, content_type="application/json")
    if answer.version is not None:
        resp.headers[VERSION_HEADER] = str(answer.version)
    return resp


async def reserve(request: web.Request) -> web.Response:
    """POST /api/inventory/{sku}/reservations: 201 new, 200 repeat, 409 conflict/stock."""
    sku = request.match_info["sku"]
    raw = await request.read()
    order_id, qty = await _validated(request, lambda: validation.reservation_body(raw))
    return stock_response(await request.app[STOCK].reserve(sku, order_id, qty))


async def list_reservations(request: web.Request) -> web.Response:
    """GET /api/inventory/{sku}/reservations, ordered by order_id."""
    page = await _validated(request, lambda: parse_page(request.query))
    sku = request.match_info["sku"]
    found, total = await _call(
        request, handlers.list_reservations, sku, page.limit, page.offset, _uow(request)
    )
    return json_response(list_body([reservation_json(r) for r in found], total))


async def release(request: web.Request) -> web.Response:
    """DELETE /api/inventory/{sku}/reservations/{order_id}: 204 (also when nothing was held)."""
    sku = request.match_info["sku"]
    raw_id = request.match_info["order_id"]
    order_id = await _validated(request, lambda: validation.path_order_id(raw_id))
    return stock_response(await request.app[STOCK].release(sku, order_id))


async def restock(request: web.Request) -> web.Response:
    """POST /api/inventory/{sku}/restock: 200 item."""
    sku = request.match_info["sku"]
    raw = await request.read()
    qty = await _validated(request, lambda: validation.restock_body(raw))
    return stock_response(await request.app[STOCK].restock(sku, qty))


async def healthz(request: web.Request) -> web.Response:
    """200 `{"status":"ok"}`; 503 when the database does not answer."""
    try:
        await asyncio.to_thread(request.app[DATABASE].ping)
    except Exception as exc:  # any failure to reach the database means "not healthy"
        log.warning("health check failed: %s", exc)
        return health_response(False)
    return health_response(True)


def create_app(database: Database, uow: UnitOfWorkFactory, stock: StockPort) -> web.Application:
    """The inventory API's routes and error answers on the given resources (`bootstrap.build_app`
    opens and closes them)."""
    app = web.Application(middlewares=[error_middleware(log, _database_outage)])
    app[DATABASE] = database
    app[UOW] = uow
    app[STOCK] = stock
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/inventory", list_items)
    app.router.add_get("/api/inventory/{sku}", get_item)
    app.router.add_get("/api/inventory/{sku}/reservations", list_reservations)
    app.router.add_post("/api/inventory/{sku}/reservations", reserve)
    app.router.add_delete("/api/inventory/{sku}/reservations/{order_id}", release)
    app.router.add_post("/api/inventory/{sku}/restock", restock)
    return app
