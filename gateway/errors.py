"""The gateway's own errors: each maps to one status code and one JSON body (SPEC §4.2)."""

from __future__ import annotations

import orjson


class GatewayError(Exception):
    """Base of every error the gateway answers itself (not an upstream's own answer)."""

    status = 500
    code = "internal_error"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        self.upstream: str | None = None  # the upstream that failed, when one did (metrics, log)

    def body(self, route: str | None, request_id: str) -> bytes:
        """The JSON error body: {"error","detail","route","request_id"}."""
        return orjson.dumps(
            {"error": self.code, "detail": self.detail, "route": route, "request_id": request_id}
        )


class BadRequest(GatewayError):
    """The request is malformed (a bad path, a smuggling attempt): 400, before routing."""

    status = 400
    code = "bad_request"


class UpstreamFailed(GatewayError):
    """The upstream gave no usable response (refused, reset, garbage): 502."""

    status = 502
    code = "bad_gateway"


class BreakerOpen(GatewayError):
    """The route's breaker is open and there is no fallback: 503 with Retry-After."""

    status = 503
    code = "breaker_open"


class GatewayTimeout(GatewayError):
    """The upstream did not answer within the route's timeout: 504.

    Named after its answer: `gateway.upstream.UpstreamTimeout` is the transport's exception
    that the pipeline turns into this one.
    """

    status = 504
    code = "gateway_timeout"


# The old name, until gateway.policy and gateway.pipeline.decide import GatewayTimeout.
UpstreamTimeout = GatewayTimeout


class PayloadTooLarge(GatewayError):
    """A request body the gateway must buffer (an idempotency-keyed request) is over its limit: 413."""

    status = 413
    code = "payload_too_large"


class IdempotencyRefused(GatewayError):
    """A keyed request the idempotency stage will not forward; `outcome` is its metrics label."""

    outcome = "refused"


class IdempotencyKeyInProgress(IdempotencyRefused):
    """The same key's first request has not been answered yet: 409 (retry later)."""

    status = 409
    code = "idempotency_key_in_progress"
    outcome = "in_progress"


class IdempotencyKeyReused(IdempotencyRefused):
    """The key was used for a request with another method, path or body: 422."""

    status = 422
    code = "idempotency_key_reused"
    outcome = "reused"


class IdempotencyStoreUnavailable(IdempotencyRefused):
    """The idempotency store cannot be reached: 503, never a possibly duplicate forward."""

    status = 503
    code = "idempotency_store_unavailable"
    outcome = "store_error"
