"""Admin views of shadow stats (SPEC §4.6): ``/-/shadow`` (JSON) and ``/-/shadow/ui`` (live HTML).

    add_shadow_routes(admin_app, lambda: state.mirror)   # in gateway/admin.py

The getter is called per request, so the mirror may be created, swapped or absent (None:
an empty report) without re-wiring the admin app.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import orjson
from aiohttp import web

from gateway.shadow.report import DEFAULT_MIN_MATCH, DEFAULT_MIN_SAMPLES, build_report, templates
from gateway.shadow.stats import RouteStats
from gateway.shadow.store import ShadowStore

__all__ = [
    "SHADOW_SOURCE",
    "StatsSource",
    "StoreSource",
    "add_shadow_routes",
    "shadow_json",
    "shadow_ui",
]

log = logging.getLogger("gateway.shadow")
POLL_INTERVAL_MS = 2000


class StatsSource(Protocol):
    """Anything that can produce current aggregates: a ShadowMirror, or a StoreSource."""

    async def snapshot(self, route: str | None = None) -> list[RouteStats]: ...


class StoreSource:
    """A :class:`StatsSource` straight from a store (e.g. an admin without a local mirror)."""

    def __init__(self, store: ShadowStore) -> None:
        self.store = store

    async def snapshot(self, route: str | None = None) -> list[RouteStats]:
        return await self.store.load(route)


SourceGetter = Callable[[], StatsSource | None]
SHADOW_SOURCE: web.AppKey[SourceGetter] = web.AppKey("shadow_source")


class _BadQuery(Exception):
    pass


def _params(request: web.Request) -> dict[str, Any]:
    q = request.query
    try:
        min_samples = int(q.get("min_samples", DEFAULT_MIN_SAMPLES))
        min_match = float(q.get("min_match", DEFAULT_MIN_MATCH))
    except ValueError as exc:
        raise _BadQuery("min_samples must be an integer and min_match a number") from exc
    if min_samples < 0 or not 0.0 <= min_match <= 1.0:
        raise _BadQuery("min_samples must be >= 0 and min_match within 0..1")
    return {"route": q.get("route") or None, "min_samples": min_samples, "min_match": min_match}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


async def _report(request: web.Request) -> dict[str, Any]:
    params = _params(request)
    source = request.app[SHADOW_SOURCE]()
    stats = await source.snapshot(params["route"]) if source is not None else []
    return build_report(stats, **params)


async def shadow_json(request: web.Request) -> web.Response:
    """``GET /-/shadow[?route=&min_samples=&min_match=]``: the report JSON of SPEC §4.4."""
    try:
        return _json(await _report(request))
    except _BadQuery as exc:
        return _json({"error": "validation_error", "detail": str(exc)}, 400)
    except Exception:
        log.exception("shadow: reading stats failed")
        return _json(
            {"error": "shadow_store_unavailable", "detail": "reading shadow stats failed"}, 503
        )


def _script_json(data: Any) -> str:
    # Safe inside <script>: no "</script>" or "<!--" can appear.
    return orjson.dumps(data).decode().replace("<", "\\u003c")


async def shadow_ui(request: web.Request) -> web.Response:
    """``GET /-/shadow/ui``: a dashboard that polls ``/-/shadow`` every 2 s and re-renders."""
    try:
        initial = await _report(request)
    except _BadQuery as exc:
        return _json({"error": "validation_error", "detail": str(exc)}, 400)
    except Exception:
        log.exception("shadow: reading stats failed")
        initial = build_report([])
    base = request.path[: -len("/ui")] if request.path.endswith("/ui") else "/-/shadow"
    source = base + (f"?{request.query_string}" if request.query_string else "")
    html = (
        templates()
        .get_template("dashboard.html")
        .render(
            initial_json=_script_json(initial),
            source=source,
            source_json=_script_json(source),
            interval_ms=POLL_INTERVAL_MS,
        )
    )
    return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store"})


def add_shadow_routes(app: web.Application, source: SourceGetter) -> None:
    """Register ``/-/shadow`` and ``/-/shadow/ui`` on an (unfrozen) admin app."""
    app[SHADOW_SOURCE] = source
    app.router.add_get("/-/shadow", shadow_json)
    app.router.add_get("/-/shadow/ui", shadow_ui)
