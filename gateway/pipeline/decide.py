"""Stage decide: the policy core's choice of target for the request (split, sticky, breaker,
fallback), and how a policy decision becomes a metric, a log field or the client's error."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.errors import BreakerOpen, GatewayError, GatewayTimeout
from gateway.pipeline.context import Context
from gateway.pipeline.health import HEALTH
from gateway.policy import Fail, Forward, choose

if TYPE_CHECKING:
    from gateway.runtime import RouteRuntime, Target

__all__ = ["decide", "error_for", "fall_back"]


def decide(ctx: Context) -> Forward[Target]:
    """The first target to send the request to; raises BreakerOpen (503) when none is admitted."""
    rt = ctx.rt
    assert rt is not None
    sticky = ctx.request.headers.get(rt.sticky) if rt.sticky else None
    step = choose(rt.plan, sticky, HEALTH)
    if isinstance(step, Fail):
        raise error_for(step, rt)
    if step.source is not None:
        fall_back(ctx, step)
    return step


def fall_back(ctx: Context, step: Forward[Target]) -> None:
    """Count and log that the fallback serves instead of `step.source` (gateway_fallbacks_total)."""
    source = step.source
    assert source is not None and step.reason is not None and ctx.rt is not None
    ctx.rt.count_fallback(source.name, step.target.name, step.reason)
    ctx.fallback = f"{source.name}:{step.reason}"


def error_for(step: Fail, rt: RouteRuntime, cause: BaseException | None = None) -> GatewayError:
    """The client's 503 (breaker open), 504 (timeout) or 502 (any other failure), as a value."""
    name = step.upstream
    err: GatewayError
    if step.error is BreakerOpen:
        err = BreakerOpen(
            f"circuit breaker for upstream {name!r} is open",
            headers={"Retry-After": str(step.retry_after)},
        )
    elif step.error is GatewayTimeout:
        err = GatewayTimeout(f"upstream {name!r} did not answer within {rt.timeout:g}s")
    else:
        err = step.error(f"upstream {name!r} failed: {cause}")
    err.upstream = name
    return err
