"""The lean upstream HTTP/1.1 client of the proxy's hot path (SPEC §5).

`UpstreamPool.exchange(...)` is the port: pooled keep-alive connections on asyncio Protocols
and httptools' response parser, much cheaper per request than aiohttp's ClientSession.

    pool = UpstreamPool("http://127.0.0.1:8101", max_connections=256)   # once, in app.py
    resp = await pool.exchange("GET", "/orders/7", [("Host", "shop")], None, timeout=5.0)
    try:
        async for chunk in resp.iter_chunks(idle_timeout=30.0):
            await client_response.write(chunk)
    finally:
        resp.release()   # pooled if the body was read to the end, else closed
    await pool.close()   # in cleanup_ctx

Failures raise UpstreamError subclasses whose `kind` is the metric label; `request_sent` and
`response_started` tell whether a fallback or retry is safe. `parse_origin` is the rule for an
upstream URL; `IDEMPOTENT_METHODS` the methods that may be sent again (RFC 9110 §9.2.2).
"""

from gateway.upstream._request import IDEMPOTENT_METHODS
from gateway.upstream.errors import (
    BodyLengthMismatch,
    BodyTooLarge,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamReset,
    UpstreamTimeout,
)
from gateway.upstream.origin import Origin, parse_origin
from gateway.upstream.pool import UpstreamPool
from gateway.upstream.response import UpstreamResponse

__all__ = [
    "IDEMPOTENT_METHODS",
    "BodyLengthMismatch",
    "BodyTooLarge",
    "Origin",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamPool",
    "UpstreamProtocolError",
    "UpstreamReset",
    "UpstreamResponse",
    "UpstreamTimeout",
    "parse_origin",
]
