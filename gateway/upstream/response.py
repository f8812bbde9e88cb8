"""The response head of one exchange, and its body as it arrives."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from gateway.upstream.errors import BodyTooLarge

if TYPE_CHECKING:
    from gateway.upstream.connection import Connection

__all__ = ["UpstreamResponse", "decode_value"]


class UpstreamResponse:
    """Status and headers as received (order and duplicates kept); the body is read from it.

    `raw_headers` are the (name, value) bytes off the wire; `headers` is the same list as text,
    decoded on first use (the proxy's hot path copies the bytes and never decodes them).

    `content_length` is the declared length (None if absent); `chunked` tells whether the
    upstream used chunked framing; `keep_alive` whether the connection may be reused.
    Responses to HEAD and 1xx/204/304 have no body whatever their headers say.
    Once the body has been fully read the connection goes back to the pool by itself;
    call `release()` in a `finally` anyway (it is idempotent).
    """

    __slots__ = (
        "status",
        "reason",
        "raw_headers",
        "content_length",
        "chunked",
        "keep_alive",
        "_conn",
        "_headers",
    )

    def __init__(
        self,
        conn: Connection,
        status: int,
        reason: str,
        raw_headers: list[tuple[bytes, bytes]],
        content_length: int | None,
        chunked: bool,
        keep_alive: bool,
    ) -> None:
        self._conn: Connection | None = conn
        self.status = status
        self.reason = reason
        self.raw_headers = raw_headers  # (name, value) bytes as received: order and duplicates kept
        self._headers: list[tuple[str, str]] | None = None
        self.content_length = content_length
        self.chunked = chunked
        self.keep_alive = keep_alive

    def __repr__(self) -> str:
        return f"<UpstreamResponse {self.status} {self.reason}>"

    @property
    def headers(self) -> list[tuple[str, str]]:
        """The headers as text (decoded on first use): names latin-1, values UTF-8, else latin-1."""
        headers = self._headers
        if headers is None:
            headers = self._headers = [
                (name.decode("latin-1"), decode_value(value)) for name, value in self.raw_headers
            ]
        return headers

    def iter_chunks(self, idle_timeout: float = 60.0) -> AsyncIterator[bytes]:
        """The body as it arrives, de-chunked; each wait for data is bounded by `idle_timeout`.

        Raises UpstreamReset if the connection drops mid-body, UpstreamTimeout if no data
        arrives within `idle_timeout`; either closes the connection.
        """
        return _BodyIterator(self, idle_timeout)

    async def read(self, limit: int | None = None, idle_timeout: float = 60.0) -> bytes:
        """The whole (remaining) body; raises BodyTooLarge past `limit` bytes."""
        conn = self._conn
        if conn is None:
            return b""
        data = conn.take_whole(limit)
        if data is not None:
            # Fast path: the body arrived with the head (the common small-response case).
            self.release()
            return data
        parts: list[bytes] = []
        size = 0
        while (chunk := await self.next_chunk(idle_timeout)) is not None:
            size += len(chunk)
            parts.append(chunk)
            if limit is not None and size > limit:
                raise BodyTooLarge(limit, b"".join(parts))
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def next_chunk(self, idle_timeout: float = 60.0) -> bytes | None:
        """The next piece of the body, or None at its end (the connection is then released)."""
        conn = self._conn
        if conn is None:
            return None
        chunk = conn.pop_chunk()
        if chunk is None:
            if conn.complete:
                self.release()
                return None
            try:
                chunk = await conn.wait_chunk(idle_timeout)
            except BaseException:
                # Reset, timeout or the caller's cancellation: never leave the connection behind.
                conn.abort()
                self.release()
                raise
            if chunk is None:
                self.release()
        return chunk

    def release(self) -> None:
        """Give the connection back: pooled if the whole response arrived, else closed."""
        conn = self._conn
        if conn is not None:
            self._conn = None
            conn.hooks.released(conn)


def decode_value(value: bytes) -> str:
    """A header value as text: UTF-8, or latin-1 for obs-text that is not UTF-8 (never fails)."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


class _BodyIterator:
    """A plain async iterator: cheaper than an async generator and needs no aclose()."""

    __slots__ = ("_resp", "_idle_timeout")

    def __init__(self, resp: UpstreamResponse, idle_timeout: float) -> None:
        self._resp = resp
        self._idle_timeout = idle_timeout

    def __aiter__(self) -> _BodyIterator:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._resp.next_chunk(self._idle_timeout)
        if chunk is None:
            raise StopAsyncIteration
        return chunk
