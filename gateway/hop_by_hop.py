"""The hop-by-hop header fields (RFC 9110 §7.6.1): one definition for every stage that drops them.

Pure (no aiohttp), so the idempotency core can use it as well as the request pipeline.
"""

from __future__ import annotations

__all__ = ["HOP_BY_HOP"]

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
