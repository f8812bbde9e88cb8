"""Encode a request head, with framing chosen from the body's type (pure, no I/O)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from gateway.upstream.errors import BodyLengthMismatch

__all__ = ["BODY_METHODS", "IDEMPOTENT_METHODS", "encode_head"]

# Methods whose requests carry a body by definition: send `Content-Length: 0` when there is none.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# RFC 9110 §9.2.2: sending one of these twice has the effect of sending it once. The one
# definition: the pool's stale-connection retry and the policy's retries and fallbacks use it.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})

Body = bytes | bytearray | AsyncIterator[bytes] | None

# The request headers that framing owns. Most names are neither, and a length test rules those
# out without lower-casing them.
_CONTENT_LENGTH = "content-length"
_TRANSFER_ENCODING = "transfer-encoding"
_FRAMING_NAME_LENGTHS = frozenset(map(len, (_CONTENT_LENGTH, _TRANSFER_ENCODING)))


def encode_head(
    method: str, target: str, headers: Sequence[tuple[str, str]], body: Body
) -> tuple[bytes, int | None]:
    """The request head as bytes, and for an iterator body its declared length (None: chunked).

    The caller's headers go out as given, except `Content-Length`/`Transfer-Encoding`,
    which the framing replaces. Raises ValueError on CR/LF inside the head (header injection)
    and BodyLengthMismatch when a declared Content-Length contradicts a bytes body.
    """
    parts = [method, " ", target, " HTTP/1.1\r\n"]
    declared: str | None = None
    lines = 2  # request line + the blank line
    for name, value in headers:
        if len(name) in _FRAMING_NAME_LENGTHS:
            low = name.lower()
            if low == _CONTENT_LENGTH:
                declared = value
                continue
            if low == _TRANSFER_ENCODING:
                continue
        parts += (name, ": ", value, "\r\n")
        lines += 1
    stream_length: int | None = None
    if body is None:
        if declared is not None and _parse_length(declared) != 0:
            raise BodyLengthMismatch(f"Content-Length {declared} declared without a body")
        if declared is not None or method in BODY_METHODS:
            parts.append("Content-Length: 0\r\n")
            lines += 1
    elif isinstance(body, (bytes, bytearray)):
        size = len(body)
        if declared is not None and _parse_length(declared) != size:
            raise BodyLengthMismatch(f"Content-Length {declared} but the body has {size} bytes")
        parts += ("Content-Length: ", str(size), "\r\n")
        lines += 1
    elif declared is not None:
        stream_length = _parse_length(declared)
        parts += ("Content-Length: ", str(stream_length), "\r\n")
        lines += 1
    else:
        parts.append("Transfer-Encoding: chunked\r\n")
        lines += 1
    parts.append("\r\n")
    text = "".join(parts)
    # One C-level count instead of a per-header scan: any CR/LF beyond the framing is injected.
    if text.count("\n") != lines or text.count("\r") != lines:
        raise ValueError("CR or LF inside the request target or a header")
    # aiohttp decodes request heads as UTF-8 with surrogateescape: this restores the exact bytes.
    return text.encode("utf-8", "surrogateescape"), stream_length


def _parse_length(value: str) -> int:
    value = value.strip()
    if not value.isdigit():
        raise BodyLengthMismatch(f"invalid Content-Length {value!r}")
    return int(value)
