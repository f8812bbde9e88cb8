"""Header policy (SPEC §4.2): what crosses the gateway in each direction, and what it adds.

Header bytes pass through unchanged both ways (gateway.http1 explains why and how).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from gateway.hop_by_hop import HOP_BY_HOP

if TYPE_CHECKING:
    from gateway.runtime import Snapshot, Target
    from gateway.upstream import UpstreamResponse

__all__ = ["HOP_BY_HOP", "RESPONSE_DROP", "RESPONSE_DROP_BYTES", "upstream_headers"]

REQUEST_DROP = HOP_BY_HOP | {
    "content-length",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
}
RESPONSE_DROP = HOP_BY_HOP | {"content-length", "x-request-id"}
RESPONSE_DROP_BYTES = frozenset(name.encode() for name in RESPONSE_DROP)


def upstream_headers(request: web.BaseRequest, snap: Snapshot, rid: str) -> list[tuple[str, str]]:
    """Client headers minus hop-by-hop and spoofable ones, plus X-Forwarded-* and X-Request-ID."""
    conn_tokens: frozenset[str] = frozenset()
    connection = request.headers.get("Connection")
    if connection:
        conn_tokens = frozenset(t.strip().lower() for t in connection.split(","))
    out: list[tuple[str, str]] = []
    client_xff = client_proto = client_host = None
    for k, v in request.raw_headers:
        name = k.decode("latin-1")
        lname = name.lower()
        if lname in REQUEST_DROP or lname in conn_tokens or lname.startswith("x-auth-"):
            if lname == "x-forwarded-for":
                client_xff = v.decode("latin-1")
            elif lname == "x-forwarded-proto":
                client_proto = v.decode("latin-1")
            elif lname == "x-forwarded-host":
                client_host = v.decode("latin-1")
            continue
        # surrogateescape: the upstream client encodes it back to exactly these bytes.
        out.append((name, v.decode("utf-8", "surrogateescape")))
    peer = request.remote or ""
    trusted = snap.trusted and snap.is_trusted(peer)
    if trusted and client_xff:
        out.append(("X-Forwarded-For", f"{client_xff}, {peer}"))
    else:
        out.append(("X-Forwarded-For", peer))
    out.append(("X-Forwarded-Proto", (trusted and client_proto) or request.scheme))
    out.append(("X-Forwarded-Host", (trusted and client_host) or request.host))
    out.append(("X-Request-ID", rid))
    return out


def response_headers(resp: UpstreamResponse, target: Target, rid: str) -> list[tuple[str, str]]:
    """The upstream's headers as text minus hop-by-hop and framing, plus the gateway's own
    (for the rare answers web.Response frames: see gateway.pipeline.respond)."""
    headers = [(k, v) for k, v in resp.headers if k.lower() not in RESPONSE_DROP]
    headers.append(("X-Request-ID", rid))
    headers.append(("X-Gateway-Route", target.route))
    headers.append(("X-Gateway-Upstream", target.name))
    return headers
