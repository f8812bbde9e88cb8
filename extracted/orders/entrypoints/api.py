"""The aiohttp HTTP API: SPEC §3's orders endpoints, answering exactly like the legacy."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

from extracted.contract.http import error_middleware, health_response, json_response
from extracted.contract.shapes import list_body
from extracted.contract.validation import parse_page
from extracted.orders.domain.commands import CancelOrder
from extracted.orders.domain.idempotency import loose_json
from extracted.orders.entrypoints.validation import (
    check_key,
    parse_customer_filter,
    parse_order_id,
    parse_place_order,
)
from extracted.orders.service import handlers as use_cases
from extracted.orders.service.ports import CustomersPort, InventoryPort, LegacyOrdersPort
from extracted.orders.service.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


class KeyLocks:
    """One asyncio lock per Idempotency-Key in flight, so repeats in this process queue up.

    Across processes the unique key column decides (the loser replays the winner's answer).
    """

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold the key's lock for the block."""
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        async with lock:
            yield


@dataclass
class Deps:
    """Everything the handlers use, built once by the wiring (or by a test, with fakes)."""

    uow: Callable[[], UnitOfWork]
    inventory: InventoryPort
    customers: CustomersPort
    healthy: Callable[[], Awaitable[bool]]
    # Read-repair source for the legacy's id range (None: a miss is simply 404).
    legacy_orders: LegacyOrdersPort | None = None
    key_locks: KeyLocks = field(default_factory=KeyLocks)


DEPS = web.AppKey("deps", Deps)


async def healthz(request: web.Request) -> web.Response:
    """200 `{"status":"ok"}`, 503 when the database does not answer."""
    deps = request.app[DEPS]
    try:
        ok = await asyncio.wait_for(deps.healthy(), timeout=5.0)
    except Exception:  # any failure of the probe is "down"
        ok = False
    return health_response(ok)


async def list_orders(request: web.Request) -> web.Response:
    """GET /api/orders[?customer_id=&limit=&offset=]."""
    deps = request.app[DEPS]
    page = parse_page(request.query)
    customer_id = parse_customer_filter(request.query)
    found, total = await use_cases.list_orders(
        deps.uow(), customer_id=customer_id, limit=page.limit, offset=page.offset
    )
    return json_response(list_body([o.to_json() for o in found], total))


async def get_order(request: web.Request) -> web.Response:
    """GET /api/orders/{id}."""
    deps = request.app[DEPS]
    order_id = parse_order_id(request.match_info["id"])
    order = await use_cases.get_order(order_id, deps.uow(), deps.legacy_orders)
    return json_response(order.to_json())


async def place_order(request: web.Request) -> web.Response:
    """POST /api/orders, with optional Idempotency-Key (checked before anything else)."""
    deps = request.app[DEPS]
    raw = await request.read()
    key = request.headers.get("Idempotency-Key") or None
    uow = deps.uow()
    if key is None:
        cmd, _ = parse_place_order(raw)
        placed = await use_cases.place_order(cmd, uow, deps.inventory, deps.customers)
        return json_response(placed.order, 201)
    check_key(key)
    async with deps.key_locks.hold(key):
        replay = await use_cases.find_answer(key, loose_json(raw), uow)
        if replay is not None:
            return json_response(replay.order, 201)
        cmd, body = parse_place_order(raw)
        placed = await use_cases.place_order(
            cmd, uow, deps.inventory, deps.customers, key=key, body=body
        )
    return json_response(placed.order, 201)


async def cancel_order(request: web.Request) -> web.Response:
    """POST /api/orders/{id}/cancel."""
    deps = request.app[DEPS]
    order_id = parse_order_id(request.match_info["id"])
    order = await use_cases.cancel_order(
        CancelOrder(order_id), deps.uow(), deps.inventory, deps.legacy_orders
    )
    return json_response(order.to_json())


def create_app(deps: Deps | None = None) -> web.Application:
    """The orders API; `deps` may be given now (tests) or set later by a cleanup_ctx (serve)."""
    app = web.Application(middlewares=[error_middleware(log)])
    if deps is not None:
        app[DEPS] = deps
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/orders", list_orders)
    app.router.add_post("/api/orders", place_order)
    app.router.add_get("/api/orders/{id}", get_order)
    app.router.add_post("/api/orders/{id}/cancel", cancel_order)
    return app
