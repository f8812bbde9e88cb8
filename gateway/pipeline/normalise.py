"""Stage normalise: split the request target and normalise its path (SPEC §4.1), or 400."""

from __future__ import annotations

from gateway.errors import BadRequest
from gateway.paths import BadPath
from gateway.paths import normalise as normalise_path
from gateway.pipeline.context import Context

__all__ = ["normalise"]


def normalise(ctx: Context) -> None:
    """Sets `ctx.path` (as sent), `ctx.query` ("" or "?...") and `ctx.npath` (normalised)."""
    raw = ctx.request.raw_path
    q = raw.find("?")
    if q < 0:
        ctx.path, ctx.query = raw, ""
    else:
        ctx.path, ctx.query = raw[:q], raw[q:]
    try:
        ctx.npath = normalise_path(ctx.path)
    except BadPath as exc:
        raise BadRequest(f"bad request path: {exc}") from None
