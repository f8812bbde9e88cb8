"""The admin listener (SPEC §4.6): health, readiness, metrics, routes, explain, breakers, reload.

Bound to anything but loopback it requires `Authorization: Bearer $GATEWAY_ADMIN_TOKEN` (probes excepted).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from gateway import metrics
from gateway.breakers import BreakerRegistry
from gateway.cli import explain_json
from gateway.paths import BadPath, normalise
from gateway.proxy import Proxy, SnapshotRef
from gateway.reload import Reloader
from gateway.shadow.views import add_shadow_routes

OPEN_PATHS = frozenset({"/-/healthz", "/-/readyz"})


@dataclass
class AdminState:
    ref: SnapshotRef
    reloader: Reloader
    breakers: BreakerRegistry
    proxy: Proxy


ADMIN_STATE = web.AppKey("admin_state", AdminState)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _error(status: int, code: str, detail: str) -> web.Response:
    return _json({"error": code, "detail": detail}, status)


def token_middleware(token: str) -> Callable[..., Awaitable[web.StreamResponse]]:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def check(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path not in OPEN_PATHS:
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                resp = _error(
                    401, "unauthorized", "admin API requires Authorization: Bearer <token>"
                )
                resp.headers["WWW-Authenticate"] = 'Bearer realm="gateway-admin"'
                return resp
        return await handler(request)

    return check


async def healthz(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    state = request.app[ADMIN_STATE]
    if state.proxy.draining:
        return _json({"status": "draining"}, 503)
    return _json({"status": "ready", "hash": state.ref.current.config.hash})


async def metrics_handler(request: web.Request) -> web.Response:
    resp = web.Response(body=metrics.exposition())
    resp.headers["Content-Type"] = metrics.CONTENT_TYPE_LATEST
    return resp


def _route_json(route: Any) -> dict[str, Any]:
    shadow = route.shadow
    idempotency = route.idempotency
    return {
        "name": route.name,
        "path": route.path,
        "methods": sorted(route.methods) if route.methods else None,
        "upstream": route.upstream,
        "fallback": route.fallback,
        "split": {u: w for u, w in route.split} if route.split else None,
        "shadow": shadow.model_dump(mode="json") if shadow is not None else None,
        "idempotency": idempotency.model_dump(mode="json") if idempotency is not None else None,
    }


async def routes(request: web.Request) -> web.Response:
    state = request.app[ADMIN_STATE]
    snap = state.ref.current
    return _json(
        {
            "hash": snap.config.hash,
            "loaded_at": state.reloader.loaded_at,
            "source": str(snap.config.source),
            "last_error": state.reloader.last_error,
            "default_upstream": snap.table.default.upstream,
            "routes": [_route_json(r) for r in snap.table.routes],
        }
    )


async def explain(request: web.Request) -> web.Response:
    method = request.query.get("method", "GET").upper()
    path = request.query.get("path")
    if not path:
        return _error(400, "bad_request", "query parameter 'path' is required")
    try:
        normalise(path.split("?", 1)[0])
    except BadPath as exc:
        return _error(400, "bad_request", f"bad path: {exc}")
    table = request.app[ADMIN_STATE].ref.current.table
    return _json(explain_json(table, method, path))


async def breakers(request: web.Request) -> web.Response:
    reg = request.app[ADMIN_STATE].breakers
    return _json({"breakers": [b.snapshot() for b in reg.all()]})


async def breaker_action(request: web.Request) -> web.Response:
    state = request.app[ADMIN_STATE]
    name = request.match_info["route"]
    action = request.match_info["action"]
    runtime = state.ref.current.runtimes.get(name)
    if runtime is None:
        return _error(404, "not_found", f"no route named {name!r}")
    wanted = request.query.get("upstream")
    if action == "reset":
        chosen = [*runtime.targets, *([runtime.fallback] if runtime.fallback else [])]
    else:
        # A kill switch acts on the route's own upstream(s), so that a fallback can still serve.
        chosen = list(runtime.targets)
    if wanted:
        chosen = [t for t in [*runtime.targets, runtime.fallback] if t and t.name == wanted]
        if not chosen:
            return _error(404, "not_found", f"route {name!r} has no upstream {wanted!r}")
    for t in chosen:
        if action == "open":
            t.breaker.force_open()
        elif action == "close":
            t.breaker.force_closed()
        else:
            t.breaker.reset()  # each of the three tells the breakers' listener (the Redis sync)
    return _json({"breakers": [t.breaker.snapshot() for t in chosen]})


async def reload(request: web.Request) -> web.Response:
    result = await request.app[ADMIN_STATE].reloader.reload("admin")
    if not result.ok:
        return _error(400, "invalid_config", result.error or "invalid configuration")
    return _json({"result": "success" if result.changed else "unchanged", "hash": result.hash})


def build_admin_app(state: AdminState, token: str | None) -> web.Application:
    """The admin web.Application; `token` set -> bearer auth on everything but the probes."""
    app = web.Application(middlewares=[token_middleware(token)] if token else [])
    app[ADMIN_STATE] = state
    app.router.add_get("/-/healthz", healthz)
    app.router.add_get("/-/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/-/routes", routes)
    app.router.add_get("/-/explain", explain)
    app.router.add_get("/-/breakers", breakers)
    app.router.add_post("/-/breakers/{route}/{action:open|close|reset}", breaker_action)
    app.router.add_post("/-/reload", reload)
    add_shadow_routes(app, lambda: state.proxy.mirror)
    return app
