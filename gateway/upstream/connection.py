"""One keep-alive HTTP/1.1 connection: an asyncio Protocol driving httptools' response parser."""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, cast

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from gateway.upstream.errors import (
    BodyLengthMismatch,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamReset,
    UpstreamTimeout,
)
from gateway.upstream.response import UpstreamResponse

if TYPE_CHECKING:
    from gateway.upstream.pool import UpstreamPool

__all__ = ["Connection", "HIGH_WATER", "LOW_WATER"]

# Buffered response bytes at which reading pauses / resumes: memory stays constant in body size.
HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024
# Payloads up to this size are copied into the head's write: one syscall beats two.
_JOIN_MAX = 64 * 1024


class Connection(asyncio.Protocol):
    """A pooled upstream connection; at most one exchange at a time, never pipelined."""

    __slots__ = (
        "pool",
        "loop",
        "transport",
        "parser",
        "lost",
        "reused",
        "closed",
        "busy",
        "broken",
        "idle_since",
        "waiter",
        "timed_out",
        "deadline",
        "error",
        "started",
        "head_only",
        "reset_parser",
        "interim",
        "response",
        "reason",
        "headers",
        "content_length",
        "chunked",
        "conn_close",
        "conn_keep_alive",
        "keep_alive",
        "until_close",
        "complete",
        "chunks",
        "buffered",
        "read_paused",
        "write_paused",
    )

    def __init__(self, pool: UpstreamPool, loop: asyncio.AbstractEventLoop) -> None:
        self.pool = pool
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = HttpResponseParser(self)
        self.lost: asyncio.Future[None] = loop.create_future()
        self.reused = (
            False  # an exchange completed on it: a failure may mean the server idled it out
        )
        self.closed = False
        self.busy = True  # created for an exchange; False only while parked in the idle list
        self.broken = False  # framing can no longer be trusted: never reuse
        self.idle_since = 0.0
        self.waiter: asyncio.Future[None] | None = None
        self.timed_out = False
        self.deadline = 0.0  # loop time at which the pool's ticker calls on_deadline()
        self.error: UpstreamError | None = None
        self.started = False
        self.head_only = False
        self.reset_parser = False
        self.interim = False
        self.response: UpstreamResponse | None = None
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []  # as received; UpstreamResponse decodes lazily
        self.content_length: int | None = None
        self.chunked = False
        self.conn_close = False
        self.conn_keep_alive = False
        self.keep_alive = False
        self.until_close = False
        self.complete = False
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.read_paused = False
        self.write_paused = False

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, so cast instead of asserting.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # not TCP (tests may use other transports)
                pass
        transport.set_write_buffer_limits(high=HIGH_WATER, low=LOW_WATER)

    def data_received(self, data: bytes) -> None:
        if not self.busy:
            # Bytes on an idle connection: the server is closing or broke protocol.
            self.broken = True
            self.abort()
            return
        self.started = True
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade:
            self._fail(UpstreamProtocolError("upstream switched protocols", response_started=True))
            return
        except HttpParserError as exc:
            self._fail(UpstreamProtocolError(f"invalid response: {exc}", response_started=True))
            return
        if self.buffered > HIGH_WATER and not self.read_paused and not self.closed:
            self.read_paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]

    def eof_received(self) -> bool | None:
        return None  # let the transport close; connection_lost decides what EOF meant

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.lost.done():
            self.lost.set_result(None)
        if not self.busy:
            self.pool._lost_idle(self)
            return
        if self.complete:
            pass
        elif self.response is not None and self.until_close and exc is None:
            self.complete = True  # EOF is how a read-until-close body ends
        elif self.error is None:
            where = "while the body arrived" if self.response is not None else "before a response"
            self.error = UpstreamReset(
                f"upstream closed the connection {where}", response_started=self.started
            )
        self._wake()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake()

    # -- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete or self.response is not None:
            raise _Unexpected  # a second response: not pipelined by us, so garbage
        self.reason = b""
        self.headers = []
        self.content_length = None
        self.chunked = False
        self.conn_close = False
        self.conn_keep_alive = False

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        n = len(name)
        if n == 14 or n == 17 or n == 10:
            low = name.lower()
            if low == b"content-length":
                self.content_length = int(value)
            elif low == b"transfer-encoding":
                self.chunked = b"chunked" in value.lower()
            elif low == b"connection":
                v = value.lower()
                self.conn_close = b"close" in v
                self.conn_keep_alive = b"keep-alive" in v
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        status = parser.get_status_code()
        if status < 200:
            # Interim 100/102/103 (101 raises HttpParserUpgrade): wait for the final response.
            self.interim = True
            return
        no_body = self.head_only or status == 204 or status == 304
        self.until_close = not no_body and self.content_length is None and not self.chunked
        self.keep_alive = (
            not self.until_close
            and not self.conn_close
            and (self.conn_keep_alive or parser.get_http_version() == "1.1")
        )
        self.response = UpstreamResponse(
            self,
            status,
            self.reason.decode("latin-1"),
            self.headers,
            self.content_length,
            self.chunked,
            self.keep_alive,
        )
        if self.head_only:
            # llhttp cannot be told about HEAD: it would wait for Content-Length bytes.
            self.complete = True
            self.reset_parser = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.complete:
            self.broken = True  # a body after HEAD: the framing is off
            return
        self.chunks.append(body)
        self.buffered += len(body)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        self.complete = True
        self._wake()

    # -- the exchange ----------------------------------------------------------------------

    async def exchange(
        self,
        head: bytes,
        payload: bytes | bytearray | None,
        stream: AsyncIterator[bytes] | None,
        stream_length: int | None,
        deadline: float,
        head_only: bool,
    ) -> UpstreamResponse:
        """Send one request and wait for its final response head, all before `deadline`."""
        self.busy = True
        self.head_only = head_only
        self.timed_out = False
        if self.reset_parser:
            self.parser = HttpResponseParser(self)
            self.reset_parser = False
        self.deadline = deadline
        ticker = self.pool._ticker
        ticker.watch(self, self.loop)
        try:
            transport = self.transport
            assert transport is not None
            if self.closed:
                raise UpstreamReset("upstream closed the idle connection", request_sent=False)
            if payload is None:
                transport.write(head)
            elif len(payload) <= _JOIN_MAX:
                transport.write(head + payload)
            else:
                transport.write(head)
                transport.write(payload)
            if stream is not None:
                await self._send_stream(stream, stream_length, deadline)
            while self.response is None:
                if self.error is not None:
                    raise self.error
                if self.timed_out:
                    raise UpstreamTimeout(
                        "no response head within the timeout", response_started=self.started
                    )
                # Inlined _wait(): this is the one wait every exchange makes.
                waiter = self.waiter = self.loop.create_future()
                try:
                    await waiter
                finally:
                    self.waiter = None
            return self.response
        except BaseException:
            self.abort()
            raise
        finally:
            ticker.unwatch(self)

    async def _send_stream(
        self, stream: AsyncIterator[bytes], length: int | None, deadline: float
    ) -> None:
        transport = self.transport
        assert transport is not None
        sent = 0
        try:
            # The caller's iterator (the client's upload) may stall: bound it by the deadline too.
            async with asyncio.timeout_at(deadline):
                async for chunk in stream:
                    if self.response is not None or self.closed:
                        # Answered early (e.g. 413) or gone: stop; the rest was never sent.
                        self.broken = True
                        return
                    n = len(chunk)
                    if not n:
                        continue
                    sent += n
                    if length is not None:
                        if sent > length:
                            raise BodyLengthMismatch(f"request body longer than {length} bytes")
                        transport.write(chunk)
                    elif n <= _JOIN_MAX:
                        transport.write(b"%x\r\n%b\r\n" % (n, chunk))
                    else:
                        transport.write(b"%x\r\n" % n)
                        transport.write(chunk)
                        transport.write(b"\r\n")
                    if self.write_paused:
                        await self._drain()
        except TimeoutError:
            raise UpstreamTimeout(
                "request body not sent within the timeout", response_started=self.started
            ) from None
        if self.closed or self.response is not None:
            return
        if length is None:
            transport.write(b"0\r\n\r\n")
        elif sent != length:
            raise BodyLengthMismatch(f"request body of {sent} bytes, {length} declared")

    async def _drain(self) -> None:
        while self.write_paused and not self.closed and self.response is None:
            if self.timed_out:
                raise UpstreamTimeout(
                    "request body not sent within the timeout", response_started=self.started
                )
            await self._wait()

    # -- the body, for UpstreamResponse ----------------------------------------------------

    def pop_chunk(self) -> bytes | None:
        """A buffered body piece, or None if none is buffered."""
        chunks = self.chunks
        if not chunks:
            return None
        chunk = chunks.popleft()
        self.buffered -= len(chunk)
        if self.read_paused and self.buffered <= LOW_WATER:
            self.read_paused = False
            if not self.closed:
                self.transport.resume_reading()  # type: ignore[union-attr]
        return chunk

    def take_all(self) -> bytes:
        """Every buffered body byte at once (the response is complete)."""
        chunks = self.chunks
        if not chunks:
            return b""
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self.buffered = 0
        return data

    async def wait_chunk(self, idle_timeout: float) -> bytes | None:
        """Wait for the next body piece (None at the end), at most `idle_timeout` per wait."""
        while True:
            chunk = self.pop_chunk()
            if chunk is not None:
                return chunk
            if self.complete:
                return None
            if self.error is not None:
                error, self.error = self.error, None
                raise error
            if self.closed:
                raise UpstreamReset("upstream connection closed", response_started=True)
            self.timed_out = False
            self.deadline = self.loop.time() + idle_timeout
            ticker = self.pool._ticker
            ticker.watch(self, self.loop)
            try:
                await self._wait()
            finally:
                ticker.unwatch(self)
            if self.timed_out and not self.chunks and not self.complete:
                raise UpstreamTimeout(f"no body data for {idle_timeout}s", response_started=True)

    # -- pool support ----------------------------------------------------------------------

    @property
    def reusable(self) -> bool:
        """The whole response arrived and both sides allow another exchange."""
        return self.complete and self.keep_alive and not self.broken and not self.closed

    def recycle(self) -> None:
        """Forget the finished exchange so the connection can park in the idle list."""
        self.busy = False
        self.reused = True
        self.response = None
        self.complete = False
        self.started = False
        self.error = None
        if self.chunks:
            self.chunks.clear()
            self.buffered = 0
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()  # type: ignore[union-attr]

    def abort(self) -> None:
        """Drop the connection now (unread data or a broken exchange)."""
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.abort()

    def close(self) -> None:
        """Close gracefully (the exchange finished, the connection is just not reused)."""
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    # -- internals -------------------------------------------------------------------------

    async def _wait(self) -> None:
        waiter = self.loop.create_future()
        self.waiter = waiter
        try:
            await waiter
        finally:
            self.waiter = None

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_deadline(self) -> None:
        """Called by the pool's ticker once `deadline` has passed."""
        self.timed_out = True
        self._wake()

    def _fail(self, error: UpstreamError) -> None:
        if self.complete:
            self.broken = True  # the response is whole; only what followed it is bad
        elif self.error is None:
            self.error = error
        self.abort()
        self._wake()


class _Unexpected(Exception):
    """Raised inside a parser callback to stop parsing bytes that no request asked for."""
