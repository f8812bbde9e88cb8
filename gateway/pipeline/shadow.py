"""Shadow capture (SPEC §4.4), in one place: which requests are mirrored, what of the request
and the primary's answer is kept for the copy, and handing the copy to the mirror.

The hot path only samples, keeps bytes it already has, and calls the mirror's non-blocking
`submit`; the copy's exchange and the comparison run in the mirror's workers.
"""

from __future__ import annotations

import time

from gateway.pipeline.context import Context
from gateway.shadow.mirror import ShadowJob, ShadowMirror, should_mirror

__all__ = ["Tap", "body_fits", "keep", "sample", "submit"]


def sample(ctx: Context, mirror: ShadowMirror | None) -> None:
    """Mirror this request? Then `ctx.capture` is the shadow's max_body (else it stays None)."""
    shadow = ctx.rt.shadow if ctx.rt is not None else None
    if shadow is not None and mirror is not None and should_mirror(shadow, ctx.method):
        ctx.capture = shadow.max_body


def body_fits(ctx: Context, mirror: ShadowMirror | None, limit: int) -> None:
    """After the request body was read: a mirrored request whose body is a stream (too large to
    buffer) or longer than `limit` is not mirrored after all (counted as skipped)."""
    body = ctx.body
    if body is not None and (not isinstance(body, bytes) or len(body) > limit):
        ctx.capture = None
        ctx.shadow = "skipped"
        if mirror is not None:
            mirror.skip(ctx.rt.name)  # type: ignore[union-attr]


def keep(ctx: Context, data: bytes) -> None:
    """The primary's whole answer body, kept for the comparison if within max_body."""
    limit = ctx.capture
    if limit:
        ctx.captured = data if len(data) <= limit else None


class Tap:
    """Keeps a streamed answer's body while it passes, up to `limit` bytes (then gives up)."""

    __slots__ = ("limit", "data")

    def __init__(self, limit: int, prefix: bytes = b"") -> None:
        self.limit = limit
        self.data: bytearray | None = bytearray(prefix) if len(prefix) <= limit else None

    def add(self, chunk: bytes) -> None:
        data = self.data
        if data is not None:
            if len(data) + len(chunk) <= self.limit:
                data += chunk
            else:
                self.data = None  # larger than max_body: the copy is skipped

    def result(self) -> bytes | None:
        return bytes(self.data) if self.data is not None else None


def submit(ctx: Context, mirror: ShadowMirror | None) -> None:
    """Hand the copy to the mirror (non-blocking); `ctx.shadow`: queued, dropped or skipped.

    Not for an answer the fallback gave: the comparison is against the primary upstream."""
    rt = ctx.rt
    target = ctx.target
    if not ctx.capture or ctx.fallback is not None or rt is None or target is None:
        return
    shadow, pool = rt.shadow, rt.shadow_pool
    if mirror is None or shadow is None or pool is None:
        ctx.shadow = "skipped"
        return
    if ctx.captured is None:
        mirror.skip(rt.name)  # the primary's body was larger than max_body
        ctx.shadow = "skipped"
        return
    body = ctx.body
    resp = ctx.resp
    job = ShadowJob(
        route=rt.name,
        shadow=shadow,
        method=ctx.method,
        target=ctx.target_path,
        headers=ctx.headers,
        body=body if isinstance(body, bytes) else None,
        primary_status=resp.status,
        primary_headers=resp.headers,
        primary_body=ctx.captured,
        primary_latency=time.perf_counter() - ctx.started,
        shadow_pool=pool,
        primary_pool=target.pool,
        timeout=rt.shadow_timeout,
    )
    ctx.shadow = "queued" if mirror.submit(job) else "dropped"
