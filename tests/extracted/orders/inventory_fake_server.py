"""A small real aiohttp server speaking inventory's HTTP API (SPEC §3), for adapter tests."""

from __future__ import annotations

import orjson
from aiohttp import web

ITEMS = web.AppKey("items", dict)
RESERVATIONS = web.AppKey("reservations", dict)


def _json(obj: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json")


def _missing(sku: str) -> web.Response:
    return _json({"error": "not_found", "detail": f"item {sku} not found"}, 404)


async def _item(request: web.Request) -> web.Response:
    sku = request.match_info["sku"]
    item = request.app[ITEMS].get(sku)
    if item is None:
        return _missing(sku)
    reserved = sum(q for (s, _), q in request.app[RESERVATIONS].items() if s == sku)
    return _json(
        {
            "sku": sku,
            "name": sku,
            "price_cents": item[0],
            "on_hand": item[1],
            "reserved": reserved,
            "available": item[1] - reserved,
        }
    )


async def _reserve(request: web.Request) -> web.Response:
    sku = request.match_info["sku"]
    item = request.app[ITEMS].get(sku)
    if item is None:
        return _missing(sku)
    body = await request.json()
    key = (sku, body["order_id"])
    held = request.app[RESERVATIONS]
    doc = {"sku": sku, "order_id": body["order_id"], "qty": body["qty"]}
    if key in held:
        if held[key] != body["qty"]:
            return _json({"error": "reservation_conflict", "detail": "x"}, 409)
        return _json(doc, 200)
    reserved = sum(q for (s, _), q in held.items() if s == sku)
    if item[1] - reserved < body["qty"]:
        return _json(
            {"error": "insufficient_stock", "detail": f"insufficient stock for {sku}"}, 409
        )
    held[key] = body["qty"]
    return _json(doc, 201)


async def _release(request: web.Request) -> web.Response:
    sku = request.match_info["sku"]
    if sku not in request.app[ITEMS]:
        return _missing(sku)
    request.app[RESERVATIONS].pop((sku, int(request.match_info["order_id"])), None)
    return web.Response(status=204)


def _page(request: web.Request, rows: list[dict]) -> web.Response:
    limit = int(request.query.get("limit", "50"))
    offset = int(request.query.get("offset", "0"))
    return _json({"items": rows[offset : offset + limit], "total": len(rows), "generated_at": "x"})


async def _items(request: web.Request) -> web.Response:
    rows = []
    for sku in sorted(request.app[ITEMS]):
        price, on_hand = request.app[ITEMS][sku]
        reserved = sum(q for (s, _), q in request.app[RESERVATIONS].items() if s == sku)
        rows.append(
            {
                "sku": sku,
                "name": sku,
                "price_cents": price,
                "on_hand": on_hand,
                "reserved": reserved,
                "available": on_hand - reserved,
            }
        )
    return _page(request, rows)


async def _reservations(request: web.Request) -> web.Response:
    sku = request.match_info["sku"]
    if sku not in request.app[ITEMS]:
        return _missing(sku)
    held = request.app[RESERVATIONS]
    rows = [
        {"sku": sku, "order_id": o, "qty": held[(s, o)]}
        for (s, o) in sorted(held, key=lambda k: k[1])
        if s == sku
    ]
    return _page(request, rows)


def inventory_app(items: dict[str, tuple[int, int]]) -> web.Application:
    """Inventory with `items` {sku: (price_cents, on_hand)} and in-memory reservations."""
    app = web.Application()
    app[ITEMS] = items
    app[RESERVATIONS] = {}
    app.router.add_get("/api/inventory", _items)
    app.router.add_get("/api/inventory/{sku}/reservations", _reservations)
    app.router.add_get("/api/inventory/{sku}", _item)
    app.router.add_post("/api/inventory/{sku}/reservations", _reserve)
    app.router.add_delete("/api/inventory/{sku}/reservations/{order_id}", _release)
    return app
