"""The upstream exchange's exceptions: one hierarchy, `kind` is the metric label."""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "BodyLengthMismatch",
    "BodyTooLarge",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamProtocolError",
    "UpstreamReset",
    "UpstreamTimeout",
]


class UpstreamError(Exception):
    """The upstream failed the exchange.

    `response_started`: some response byte had arrived (a retry or fallback may not be safe).
    `request_sent`: some request byte was written to a socket (False: the upstream never saw
    the request, so a fallback is safe for every method).
    """

    kind: ClassVar[str] = "upstream"

    def __init__(
        self, message: str, *, response_started: bool = False, request_sent: bool = True
    ) -> None:
        super().__init__(message)
        self.response_started = response_started
        self.request_sent = request_sent


class UpstreamConnectError(UpstreamError):
    """No connection could be opened (refused, unreachable, pool closed)."""

    kind: ClassVar[str] = "connect"


class UpstreamTimeout(UpstreamError):
    """A deadline passed: pool wait, connect, send, response head, or a body read."""

    kind: ClassVar[str] = "timeout"


class UpstreamReset(UpstreamError):
    """The connection closed before or while the response arrived."""

    kind: ClassVar[str] = "reset"


class UpstreamProtocolError(UpstreamError):
    """The upstream answered something that is not valid HTTP/1.x."""

    kind: ClassVar[str] = "protocol"


class BodyLengthMismatch(ValueError):
    """The caller's request body did not match the Content-Length it declared (a client fault)."""


class BodyTooLarge(Exception):
    """`read(limit=...)` saw more than `limit` bytes; `partial` holds what was read so far.

    The response is not released: the rest can still be streamed with `iter_chunks`.
    """

    def __init__(self, limit: int, partial: bytes) -> None:
        super().__init__(f"response body larger than {limit} bytes")
        self.limit = limit
        self.partial = partial
