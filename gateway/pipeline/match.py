"""Stage match: the route for the request (SPEC §4.1) and what goes to its upstream."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.pipeline.context import Context
from gateway.pipeline.headers import upstream_headers

if TYPE_CHECKING:
    from gateway.runtime import RouteRuntime

__all__ = ["match"]


def match(ctx: Context) -> RouteRuntime:
    """Sets `ctx.rt` (the route's runtime), `ctx.target_path` (rewritten path + query) and
    `ctx.headers` (the upstream request's headers). A request no route matches gets `default`."""
    snap = ctx.snap
    found = snap.table.match(ctx.method, ctx.npath)
    ctx.rt = rt = snap.runtimes[found.route.name]
    ctx.target_path = found.upstream_path + ctx.query
    ctx.headers = upstream_headers(ctx.request, snap, ctx.rid)
    return rt
