"""The one per-request object the pipeline's stages pass along (slots: no per-request dict)."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from gateway.idempotency.stage import Claim
    from gateway.pipeline.body import BodyStream
    from gateway.runtime import RouteRuntime, Snapshot, Target
    from gateway.upstream import BodyTooLarge, UpstreamResponse

__all__ = ["Context", "new_request_id"]

_MAX_REQUEST_ID = 200
_RID_BATCH = 64  # ids per os.urandom call: one syscall per 64 requests instead of one each
_rid_pool: list[str] = []


def new_request_id() -> str:
    """32 hex digits from os.urandom, drawn in batches."""
    if not _rid_pool:
        hexed = os.urandom(16 * _RID_BATCH).hex()
        _rid_pool.extend(hexed[i : i + 32] for i in range(0, len(hexed), 32))
    return _rid_pool.pop()


class Context:
    """One request on its way through the stages: what each found out, for the next ones.

    Set by normalise: `path`, `query`, `npath`; by match: `rt`, `target_path`, `headers`;
    by the body and idempotency stages: `body`, `claim`; by exchange: `target`, `resp`,
    `fallback`; by respond: `status`, `upstream`, `sent`. Read by record at the end.
    """

    __slots__ = (
        "request",
        "snap",
        "started",
        "method",
        "rid",
        "path",
        "query",
        "npath",
        "rt",
        "target_path",
        "headers",
        "body",
        "claim",
        "target",
        "resp",
        "kept",
        "status",
        "upstream",
        "sent",
        "fallback",
        "shadow",
        "idempotency",
        "capture",
        "captured",
    )

    def __init__(self, request: web.BaseRequest, snap: Snapshot) -> None:
        self.started = time.perf_counter()
        self.request = request
        self.snap = snap  # the request keeps this table even if a reload swaps it
        self.method = request.method
        rid = request.headers.get("X-Request-ID")
        if not rid or len(rid) > _MAX_REQUEST_ID or not rid.isprintable():
            rid = new_request_id()
        self.rid = rid
        self.path = ""  # the raw path without the query, as the client sent it (access log)
        self.rt: RouteRuntime | None = None  # None: the request failed before routing
        self.body: bytes | BodyStream | None = None
        self.claim: Claim | None = None  # an idempotency key this request holds in flight
        self.target: Target | None = None  # the target whose answer the client gets
        # What the idempotency stage read of a 2xx answer: all of it, or the start of a large one.
        self.kept: bytes | BodyTooLarge | None = None
        self.status = 500
        self.upstream: str | None = None  # the access log's and metrics' `upstream`
        self.sent = 0  # body bytes sent to the client
        self.fallback: str | None = None  # "<from upstream>:<reason>" when the fallback served
        self.shadow: str | None = None  # queued | dropped | skipped, when the route is shadowed
        self.idempotency: str | None = None  # the request's gateway_idempotency_total outcome
        # Mirrored: keep up to this many bytes of the answer for the shadow copy (None: not).
        self.capture: int | None = None
        self.captured: bytes | None = None  # that body; None when it was larger than `capture`

    # Set by the stage that owns them before any reader runs (declared for type checkers).
    query: str
    npath: str
    target_path: str
    headers: list[tuple[str, str]]
    resp: UpstreamResponse
