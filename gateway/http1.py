"""HTTP/1.x framing of the answers the gateway relays: transport only, no routing or policy.

Header bytes follow one policy in both directions: **they pass through as received**. Requests:
the upstream client writes the client's header bytes unchanged (gateway.upstream._request).
Responses: the upstream's status reason and header lines go to the client byte for byte (llhttp
admits no CR, LF or NUL in them), obs-text that is not UTF-8 included. aiohttp's own writer
cannot send such bytes (it UTF-8-encodes text headers and drops lone surrogates), which is one
reason the gateway frames relayed answers here; the other is speed: for a body already in memory,
a web.Response costs a CIMultiDict, a dozen header look-ups, five coroutines and a decode/encode
round trip of every header.

Everything else is what aiohttp's web.Response / StreamResponse would send, in the same order:
the upstream's lines, the gateway's lines, then Content-Length (or Transfer-Encoding: chunked),
the Content-Type default, Date, Server and Connection as aiohttp adds them. The differential
test (tests/gateway/test_http1.py) compares the bytes with web.Response's on real sockets.

This module is the one place that touches aiohttp internals (`request._payload_writer` and
StreamResponse's private state), which is why pyproject.toml pins aiohttp to one minor version.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE, HttpVersion10, HttpVersion11

__all__ = ["Prebuilt", "Streamed", "buffered", "failed", "header_lines", "status_line"]

_CT, _DATE, _SERVER = 1, 2, 4
_DEFAULTED = {b"content-type": _CT, b"date": _DATE, b"server": _SERVER}
_EMPTY = frozenset((204, 304, *range(100, 200)))  # aiohttp's EMPTY_BODY_STATUS_CODES
_SERVER_LINE = f"Server: {SERVER_SOFTWARE}\r\n".encode()
_CT_DEFAULT = b"Content-Type: application/octet-stream\r\n"
_CHUNKED = b"Transfer-Encoding: chunked\r\n"
_status_lines: dict[tuple[int, int, int, str], bytes] = {}


def header_lines(pairs: Iterable[tuple[str, str]]) -> bytes:
    """b"Name: value\\r\\n..." for headers the gateway adds itself (UTF-8, as aiohttp writes
    them); raises ValueError on CR or LF, as aiohttp's serializer does. Call it once per table
    compile, not per request."""
    out = []
    for name, value in pairs:
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
            raise ValueError("Newline or carriage return detected in headers")
        out.append(f"{name}: {value}\r\n")
    return "".join(out).encode("utf-8")


def status_line(version: Any, status: int, reason: str) -> bytes:
    """b"HTTP/1.1 200 OK\\r\\n"; `reason` as the upstream sent it (decoded latin-1), so its bytes
    go out unchanged. Cached per distinct line; raises ValueError on CR/LF like web.Response."""
    key = (version[0], version[1], status, reason)
    line = _status_lines.get(key)
    if line is None:
        if "\r" in reason or "\n" in reason:
            raise ValueError("Reason cannot contain \\r or \\n")  # web.Response's own check
        try:
            raw = reason.encode(
                "latin-1"
            )  # the upstream's bytes (gateway.upstream decodes latin-1)
        except UnicodeEncodeError:
            raw = reason.encode("utf-8")
        line = b"HTTP/%d.%d %d %s\r\n" % (version[0], version[1], status, raw)
        if len(_status_lines) >= 1024:  # reasons are upstream-chosen: stay bounded
            _status_lines.clear()
        _status_lines[key] = line
    return line


def _relayed(
    add: Any, raw_headers: list[tuple[bytes, bytes]], drop: frozenset[bytes], extra: bytes
) -> int:
    """Append the upstream's lines minus `drop` (lower-case names), then `extra`; returns which
    of Content-Type / Date / Server the upstream sent (bit flags), so no default repeats them."""
    defaulted = 0
    for name, value in raw_headers:
        lname = name.lower()
        if lname in drop:
            continue
        bit = _DEFAULTED.get(lname)
        if bit is not None:
            defaulted |= bit
        add(b"%s: %s\r\n" % (name, value))
    add(extra)
    return defaulted


def _tail(add: Any, defaulted: int, version: Any, keep_alive: bool) -> None:
    """Date, Server and Connection, as aiohttp's _prepare_headers adds them."""
    if not defaulted & _DATE:
        add(b"Date: %s\r\n" % rfc822_formatted_time().encode())
    if not defaulted & _SERVER:
        add(_SERVER_LINE)
    if keep_alive:
        if version == HttpVersion10:
            add(b"Connection: keep-alive\r\n")
    elif version == HttpVersion11:
        add(b"Connection: close\r\n")
    add(b"\r\n")


def buffered(
    request: web.BaseRequest,
    status: int,
    reason: str,
    raw_headers: list[tuple[bytes, bytes]],
    drop: frozenset[bytes],
    extra: bytes,
    has_body: bool,
    length: int | None,
    body: bytes,
) -> tuple[web.StreamResponse, int]:
    """A complete answer (head and body) for a body already read, and the body's size.

    `extra`: the gateway's own header lines. `has_body`: False for HEAD, 1xx, 204 and 304
    (`length` then is what the upstream declared: a HEAD keeps the length a GET would have).
    """
    version = request.version
    keep_alive = request.keep_alive
    try:
        parts = [status_line(version, status, reason)]
    except ValueError as exc:
        # aiohttp raised this while writing the head, after the handler: keep it there.
        return failed(status, keep_alive, exc), 0
    add = parts.append
    # _relayed() and _tail(), inlined: this is every small answer's path (two calls less).
    defaulted = 0
    for name, value in raw_headers:
        lname = name.lower()
        if lname in drop:
            continue
        bit = _DEFAULTED.get(lname)
        if bit is not None:
            defaulted |= bit
        add(b"%s: %s\r\n" % (name, value))
    add(extra)
    if has_body:
        add(b"Content-Length: %d\r\n" % length)  # type: ignore[str-format]
        if length and not defaulted & _CT:
            add(_CT_DEFAULT)
    elif length is not None and status not in _EMPTY:
        add(b"Content-Length: %d\r\n" % length)
    if not defaulted & _DATE:
        add(b"Date: %s\r\n" % rfc822_formatted_time().encode())
    if not defaulted & _SERVER:
        add(_SERVER_LINE)
    if keep_alive:
        if version == HttpVersion10:
            add(b"Connection: keep-alive\r\n")
    elif version == HttpVersion11:
        add(b"Connection: close\r\n")
    add(b"\r\n")
    if body:
        add(body)
    return Prebuilt(b"".join(parts), status, keep_alive, None), len(body)


def failed(status: int, keep_alive: bool, error: Exception) -> Prebuilt:
    """An answer that raises `error` when aiohttp prepares it (after the handler, as
    web.Response raises a bad header there): the client's connection gets aiohttp's 500."""
    return Prebuilt(b"", status, keep_alive, error)


class Prebuilt(web.StreamResponse):
    """A response whose bytes are ready: aiohttp's prepare() writes them, write_eof() is a no-op.

    StreamResponse.__init__ is skipped on purpose (no header multidict to build); the class-level
    defaults cover every attribute aiohttp's server reads after the handler (`keep_alive`, the eof state).
    """

    def __init__(self, data: bytes, status: int, keep_alive: bool, error: Exception | None) -> None:
        self._data = data
        self._status = status
        self._reason = ""
        self._keep_alive = keep_alive
        self._error = error

    async def prepare(self, request: web.BaseRequest) -> None:  # type: ignore[override]
        if self._eof_sent:
            return
        if self._error is not None:
            raise self._error
        self._eof_sent = True
        # As StreamWriter.write_eof would: one transport write, then wait only if the client is slow.
        await request._payload_writer.write_eof(self._data)
        self._body_length = len(self._data)

    async def write_eof(self, data: bytes = b"") -> None:
        return


class Streamed(web.StreamResponse):
    """An answer whose body follows in pieces: `await prepare(request)` writes the head, then
    `write(chunk)` each piece and `write_eof()`; aiohttp's writer does the body framing
    (Content-Length, or chunked on HTTP/1.1; on HTTP/1.0 without a length, the connection's end).

    For a body (not HEAD, 1xx, 204 or 304). StreamResponse.__init__ is skipped as in Prebuilt.
    """

    def __init__(
        self,
        status: int,
        reason: str,
        raw_headers: list[tuple[bytes, bytes]],
        drop: frozenset[bytes],
        extra: bytes,
        length: int | None,
    ) -> None:
        self._status = status
        self._reason = reason
        self._raw = raw_headers
        self._drop = drop
        self._extra = extra
        self._length = length

    async def prepare(self, request: web.BaseRequest) -> Any:
        if self._eof_sent:
            return None
        if self._payload_writer is not None:
            return self._payload_writer
        version = request.version
        length = self._length
        keep_alive = request.keep_alive
        if length is None and version != HttpVersion11:
            keep_alive = False  # the body ends with the connection
        parts = [status_line(version, self._status, self._reason)]
        add = parts.append
        defaulted = _relayed(add, self._raw, self._drop, self._extra)
        if length is not None:
            add(b"Content-Length: %d\r\n" % length)
        elif version == HttpVersion11:
            add(_CHUNKED)
        if length != 0 and not defaulted & _CT:
            add(_CT_DEFAULT)
        _tail(add, defaulted, version, keep_alive)
        self._keep_alive = keep_alive
        writer = request._payload_writer
        self._req = request
        self._payload_writer = writer
        await writer.write(b"".join(parts))  # the head, written before the body framing is on
        if length is not None:
            writer.length = length
        elif version == HttpVersion11:
            writer.enable_chunking()
        return writer
