"""Stage record: what every request leaves behind, however it ended: the in-flight gauge,
gateway_requests_total, the duration histogram and one access-log line (SPEC §4.7, §4.9)."""

from __future__ import annotations

import time

from gateway import metrics
from gateway.accesslog import AccessLog, now_iso
from gateway.pipeline.context import Context

__all__ = ["KNOWN_METHODS", "enter", "record"]

# Other methods are counted as "OTHER": the label set stays bounded whatever clients send.
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"}
)
_inflight = metrics.INFLIGHT_NOW


def enter() -> None:
    """A request is in flight (paired with `record`, which ends it)."""
    _inflight.n += 1
    if _inflight.via_gauge:
        metrics.INFLIGHT.inc()


def record(ctx: Context, access_log: AccessLog | None) -> None:
    """The request is done (answered, failed, or its client left)."""
    _inflight.n -= 1
    if _inflight.via_gauge:
        metrics.INFLIGHT.dec()
    elapsed = time.perf_counter() - ctx.started
    method = ctx.method
    m = method if method in KNOWN_METHODS else "OTHER"
    rt = ctx.rt
    if rt is not None:
        rt.count(ctx.upstream or "none", m, ctx.status)
        if ctx.target is not None:
            ctx.target.duration.observe(elapsed)
    else:
        metrics.REQUESTS.labels("none", "none", m, str(ctx.status)).inc()
    if access_log is not None:
        access_log.log(
            {
                "ts": now_iso(),
                "request_id": ctx.rid,
                "client": ctx.request.remote,
                "method": method,
                "path": ctx.path,
                "route": rt.name if rt is not None else None,
                "upstream": ctx.upstream,
                "status": ctx.status,
                "duration_ms": round(elapsed * 1000, 3),
                "bytes": ctx.sent,
                "fallback": ctx.fallback,
                "shadow": ctx.shadow,
                "idempotency": ctx.idempotency,
            }
        )
