"""The one rule for an upstream URL: ``http://host[:port]``, nothing more (pure, no I/O).

`UpstreamPool` applies it when it is built, and routes.yaml applies it at load time, so a
bad URL is a config error naming its line rather than a failure on the first request.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import urlsplit

__all__ = ["Origin", "parse_origin"]


class Origin(NamedTuple):
    """Where an upstream listens."""

    host: str
    port: int


def parse_origin(url: str) -> Origin:
    """The host and port of an upstream URL; ValueError saying what is wrong with it."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        # The pool speaks plain HTTP/1.1 only.
        raise ValueError(f"https upstreams are not supported yet; use http:// ({url!r})")
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"url must be http://host[:port], got {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("url must not carry a path, query or fragment (use a route's rewrite)")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad port in url {url!r}") from exc
    return Origin(parts.hostname, port or 80)
