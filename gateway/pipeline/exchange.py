"""Stage exchange: send the request upstream, and follow the policy's decision after each
outcome (retry, fall back, fail) until there is an answer to deliver.

A loop, not recursion: every turn is one exchange; the policy core (gateway.policy) decides
what the next turn is. Every outcome is reported here, to the target's metrics and breaker:
an upstream failure (or 5xx) as a failure, an answer below 500 as a success, a client that
left as neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.errors import GatewayError
from gateway.pipeline.body import BodyStream
from gateway.pipeline.context import Context
from gateway.pipeline.decide import error_for, fall_back
from gateway.pipeline.health import HEALTH
from gateway.policy import (
    DELIVER,
    FAILURE_STATUS,
    IDEMPOTENT_METHODS,
    RETRY,
    Fail,
    Forward,
    after_error,
    after_status,
    error_after,
)
from gateway.upstream import UpstreamError

if TYPE_CHECKING:
    from gateway.runtime import Target

__all__ = ["exchange", "failed_midway"]


async def exchange(ctx: Context, step: Forward[Target]) -> None:
    """Sets `ctx.resp` and `ctx.target` (who answered); raises the 502/504 GatewayError."""
    rt = ctx.rt
    assert rt is not None
    plan = rt.plan
    method = ctx.method
    path = ctx.target_path
    headers = ctx.headers
    body = ctx.body
    timeout = rt.timeout
    idempotent = method in IDEMPOTENT_METHODS
    target = step.target
    fell_back = step.source is not None  # already on the fallback: there is no second one
    tries = 0
    while True:
        tries += 1
        try:
            resp = await target.pool.exchange(
                method, path, headers, body, timeout=timeout, idempotent=idempotent
            )
        except UpstreamError as exc:
            target.errors[exc.kind].inc()
            target.breaker.failure()
            after = after_error(
                plan,
                target,
                exc.kind,
                request_sent=exc.request_sent,
                idempotent=idempotent,
                replayable=not isinstance(body, BodyStream) or not body.started,
                tries=tries,
                fell_back=fell_back,
                health=HEALTH,
            )
            if after is RETRY:
                continue
            if isinstance(after, Fail):
                raise error_for(after, rt, exc) from None
            assert isinstance(after, Forward)
            fall_back(ctx, after)
            target, fell_back, tries = after.target, True, 0
            continue
        except BaseException:
            target.breaker.abandon()  # the client left: not a failure
            raise
        if resp.status >= FAILURE_STATUS:
            target.errors["status"].inc()
            target.breaker.failure()
            then = after_status(
                plan,
                target,
                resp.status,
                idempotent=idempotent,
                streamed=isinstance(body, BodyStream),
                fell_back=fell_back,
                health=HEALTH,
            )
            if then is not DELIVER:
                assert isinstance(then, Forward)
                resp.release()
                fall_back(ctx, then)
                target, fell_back, tries = then.target, True, 0
                continue
        else:
            target.breaker.success()
        ctx.resp = resp
        ctx.target = target
        return


def failed_midway(ctx: Context, exc: UpstreamError) -> GatewayError:
    """The answer's body failed after its head arrived: counted against the upstream like any
    failure; the error is what the client gets if nothing was sent to it yet."""
    target = ctx.target
    rt = ctx.rt
    assert target is not None and rt is not None
    target.errors[exc.kind].inc()
    target.breaker.failure()
    ctx.resp.release()
    return error_for(Fail(error_after(exc.kind), target.name), rt, exc)
