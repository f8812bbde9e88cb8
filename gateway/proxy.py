"""The request handler: a short pipeline of stages (docs/architecture.md; SPEC §4.2, §4.3, §4.12).

    normalise -> match -> idempotency (keyed requests) | body -> decide -> exchange -> respond
    -> record

Each stage is a small module of gateway.pipeline (the idempotency stage is
gateway.idempotency.stage); one Context per request carries what they find out. Which upstream
serves, and whether to retry, fall back or fail, is the policy core's (gateway.policy). A new
capability adds a stage here or a rule there.

Hot-path rules (SPEC §5): no disk, no Redis, no blocking calls, no per-request regex or formatter work;
metric children are pre-bound per route at table compile time (gateway.runtime).
"""

from __future__ import annotations

from aiohttp import web

from gateway.accesslog import AccessLog
from gateway.errors import GatewayError
from gateway.idempotency import IdempotencyStore
from gateway.idempotency.stage import admit, forward_claimed, key_of
from gateway.pipeline.body import read_body
from gateway.pipeline.context import Context, new_request_id
from gateway.pipeline.decide import decide
from gateway.pipeline.exchange import exchange
from gateway.pipeline.match import match
from gateway.pipeline.normalise import normalise
from gateway.pipeline.record import enter, record
from gateway.pipeline.respond import error_response, respond
from gateway.pipeline.shadow import sample, submit
from gateway.runtime import Snapshot
from gateway.shadow.mirror import ShadowMirror

__all__ = ["Proxy", "SnapshotRef", "new_request_id"]


class SnapshotRef:
    """The one reference to the serving snapshot; a reload replaces `current` in one assignment."""

    __slots__ = ("current",)

    def __init__(self, snapshot: Snapshot) -> None:
        self.current = snapshot


class Proxy:
    """aiohttp low-level handler: `web.Server(Proxy(...))`."""

    def __init__(self, ref: SnapshotRef, access_log: AccessLog | None = None) -> None:
        self.ref = ref
        self.access_log = access_log
        self.draining = False
        self.mirror: ShadowMirror | None = None  # set while the shadow mirror runs (gateway.app)
        # Opened by gateway.app; None: keyed requests on idempotency routes get 503.
        self.idempotency: IdempotencyStore | None = None

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        ctx = Context(request, self.ref.current)
        enter()
        try:
            try:
                normalise(ctx)
                rt = match(ctx)
                if rt.shadow is not None:
                    sample(ctx, self.mirror)
                key = key_of(ctx) if rt.idempotency is not None else None
                if key is not None:
                    replay = await admit(ctx, key, self.idempotency, self.mirror)
                    if replay is not None:
                        return replay
                    await forward_claimed(ctx)
                else:
                    if request.body_exists:
                        await read_body(ctx, self.mirror)
                    await exchange(ctx, decide(ctx))
            except GatewayError as err:
                return error_response(ctx, err)
            out = await respond(ctx)
            if ctx.capture:
                submit(ctx, self.mirror)
            return out
        finally:
            if ctx.claim is not None:
                ctx.idempotency = ctx.claim.outcome
            record(ctx, self.access_log)
