"""One keep-alive HTTP/1.1 connection: an asyncio Protocol driving httptools' response parser.

Where an exchange stands is one `Phase`; whether the connection may carry another exchange is
derived from it (`REUSABLE`), never from a set of flags. The connection tells its owner (the pool)
what it needs through `ConnectionHooks` and never reaches into it.

    IDLE --exchange()--> SENDING --first response byte--> HEAD --final head--> BODY | BODY_TO_EOF
    BODY --message complete--> REUSABLE (keep-alive, framing intact) | SPENT (must not be reused)
    BODY_TO_EOF --EOF--> SPENT;  REUSABLE --recycle()--> IDLE;  REUSABLE --closed/spoilt--> SPENT
    any phase before the response is complete --closed--> CLOSED

Longer than 400 lines on purpose: the transport callbacks, the parser callbacks, the exchange and
the body reads all move the one phase and share one buffer; split apart, each would set another's.
"""

from __future__ import annotations

import asyncio
import enum
import socket
from collections import deque
from collections.abc import AsyncIterator
from typing import Protocol, cast

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from gateway.upstream._ticker import Ticker
from gateway.upstream.errors import (
    BodyLengthMismatch,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamReset,
    UpstreamTimeout,
)
from gateway.upstream.response import UpstreamResponse

__all__ = ["HIGH_WATER", "LOW_WATER", "Connection", "ConnectionHooks", "Phase"]

# Buffered response bytes at which reading pauses / resumes: memory stays constant in body size.
HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024
# Payloads up to this size are copied into the head's write: one syscall beats two.
_JOIN_MAX = 64 * 1024

# The response headers that framing reads. Most names are none of them, and a length test
# rules those out without lower-casing them.
_CONTENT_LENGTH = b"content-length"
_TRANSFER_ENCODING = b"transfer-encoding"
_CONNECTION = b"connection"
_FRAMING_NAME_LENGTHS = frozenset(map(len, (_CONTENT_LENGTH, _TRANSFER_ENCODING, _CONNECTION)))


class Phase(enum.Enum):
    """Where the connection's current exchange stands."""

    IDLE = "idle"  # parked in the pool between exchanges
    SENDING = "sending"  # the request is going out; no response byte yet
    HEAD = "head"  # response bytes arriving, no final head yet (interim 1xx heads included)
    BODY = "body"  # final head in; the body is framed by Content-Length or chunks
    BODY_TO_EOF = "body-to-eof"  # final head in; the body ends when the upstream closes
    REUSABLE = "reusable"  # response complete; the connection may carry another exchange
    SPENT = "spent"  # response complete; the connection must not be reused
    CLOSED = "closed"  # closed before the response was complete (or while parked)


# Module-level names: a global load and an identity test per check on the hot path.
_IDLE = Phase.IDLE
_SENDING = Phase.SENDING
_HEAD = Phase.HEAD
_BODY = Phase.BODY
_BODY_TO_EOF = Phase.BODY_TO_EOF
_REUSABLE = Phase.REUSABLE
_SPENT = Phase.SPENT
_CLOSED = Phase.CLOSED


class ConnectionHooks(Protocol):
    """What a connection tells its owner (the pool)."""

    def released(self, conn: Connection) -> None:
        """The exchange is over (body read to the end, or abandoned): park or close `conn`."""

    def idle_lost(self, conn: Connection) -> None:
        """Parked `conn` closed (the upstream hung up, or sent bytes nobody asked for)."""


class Connection(asyncio.Protocol):
    """A pooled upstream connection; at most one exchange at a time, never pipelined."""

    __slots__ = (
        "hooks",
        "ticker",
        "loop",
        "transport",
        "parser",
        "lost",
        "phase",
        "reused",
        "idle_since",
        "waiter",
        "timed_out",
        "deadline",
        "error",
        "head_only",
        "response",
        "reason",
        "headers",
        "content_length",
        "chunked",
        "conn_close",
        "conn_keep_alive",
        "keep_alive",
        "chunks",
        "buffered",
        "read_paused",
        "write_paused",
    )

    def __init__(
        self, hooks: ConnectionHooks, ticker: Ticker, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.hooks = hooks
        self.ticker = ticker  # checks `deadline` while an exchange waits
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = HttpResponseParser(self)
        self.lost: asyncio.Future[None] = loop.create_future()
        self.phase = _SENDING  # created for an exchange
        self.reused = False  # an exchange completed on it: a failure may mean it idled out
        self.idle_since = 0.0
        self.waiter: asyncio.Future[None] | None = None
        self.timed_out = False
        self.deadline = 0.0  # loop time at which the ticker calls on_deadline()
        self.error: UpstreamError | None = None
        self.head_only = False  # the request is HEAD: the response has no body
        self.response: UpstreamResponse | None = None
        # The response head being parsed; UpstreamResponse decodes the headers lazily.
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.content_length: int | None = None
        self.chunked = False
        self.conn_close = False
        self.conn_keep_alive = False
        self.keep_alive = False  # both sides allow another exchange, and the framing holds
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
        phase = self.phase
        if phase is _IDLE:
            # Bytes on a parked connection: the server is closing or broke protocol.
            self.abort()
            self.hooks.idle_lost(self)
            return
        if phase is _SENDING:
            self.phase = _HEAD
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade:
            self._fail(UpstreamProtocolError("upstream switched protocols", response_started=True))
            return
        except HttpParserError as exc:
            self._fail(UpstreamProtocolError(f"invalid response: {exc}", response_started=True))
            return
        if self.buffered > HIGH_WATER and not self.read_paused:
            transport = self.transport
            assert transport is not None
            if not transport.is_closing():
                self.read_paused = True
                transport.pause_reading()

    def eof_received(self) -> bool | None:
        return None  # let the transport close; connection_lost decides what EOF meant

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        phase = self.phase
        if phase is _IDLE:
            self.phase = _CLOSED
            self.hooks.idle_lost(self)
            return
        if phase is _REUSABLE or phase is _BODY_TO_EOF and exc is None:
            self.phase = _SPENT  # whole (EOF is how a read-until-close body ends), not reusable
        elif phase is not _SPENT and phase is not _CLOSED:
            if self.error is None:
                where = (
                    "while the body arrived" if self.response is not None else "before a response"
                )
                self.error = UpstreamReset(
                    f"upstream closed the connection {where}",
                    response_started=phase is not _SENDING,
                )
            self.phase = _CLOSED
        self._wake()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake()

    # -- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.phase is not _HEAD:
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
        if len(name) in _FRAMING_NAME_LENGTHS:
            low = name.lower()
            if low == _CONTENT_LENGTH:
                self.content_length = int(value)
            elif low == _TRANSFER_ENCODING:
                self.chunked = b"chunked" in value.lower()
            elif low == _CONNECTION:
                v = value.lower()
                self.conn_close = b"close" in v
                self.conn_keep_alive = b"keep-alive" in v
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        status = parser.get_status_code()
        if status < 200:
            # Interim 100/102/103 (101 raises HttpParserUpgrade): wait for the final response.
            return
        no_body = self.head_only or status == 204 or status == 304
        until_close = not no_body and self.content_length is None and not self.chunked
        self.keep_alive = (
            not until_close
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
            self._complete()
        else:
            self.phase = _BODY_TO_EOF if until_close else _BODY
        self._wake()

    def on_body(self, body: bytes) -> None:
        phase = self.phase
        if phase is _REUSABLE or phase is _SPENT:
            self._spoil()  # a body after HEAD: the framing is off
            return
        self.chunks.append(body)
        self.buffered += len(body)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_message_complete(self) -> None:
        phase = self.phase
        if phase is _BODY or phase is _BODY_TO_EOF:
            self.phase = _REUSABLE if self.keep_alive else _SPENT  # _complete(), inlined
            self._wake()
        # In HEAD an interim response ended; a response to HEAD is complete already.

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
        phase = self.phase
        if phase is _IDLE:
            self.phase = _SENDING
        self.head_only = head_only
        self.timed_out = False
        self.deadline = deadline
        ticker = self.ticker
        ticker.watch(self, self.loop)
        try:
            transport = self.transport
            assert transport is not None
            if phase is _CLOSED:
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
                        "no response head within the timeout",
                        response_started=self.phase is not _SENDING,
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
                    if not self._awaiting_head():
                        # Answered early (e.g. 413) or gone: stop; the rest was never sent.
                        self._spoil()
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
                "request body not sent within the timeout",
                response_started=self.phase is not _SENDING,
            ) from None
        if not self._awaiting_head():
            return
        if length is None:
            transport.write(b"0\r\n\r\n")
        elif sent != length:
            raise BodyLengthMismatch(f"request body of {sent} bytes, {length} declared")

    async def _drain(self) -> None:
        while self.write_paused and self._awaiting_head():
            if self.timed_out:
                raise UpstreamTimeout(
                    "request body not sent within the timeout",
                    response_started=self.phase is not _SENDING,
                )
            await self._wait()

    def _awaiting_head(self) -> bool:
        """Still open and no final response head yet (the request body may still go out)."""
        phase = self.phase
        return phase is _SENDING or phase is _HEAD

    # -- the body, for UpstreamResponse ----------------------------------------------------

    @property
    def complete(self) -> bool:
        """The whole response has arrived (its body may still be buffered here)."""
        phase = self.phase
        return phase is _REUSABLE or phase is _SPENT

    def pop_chunk(self) -> bytes | None:
        """A buffered body piece, or None if none is buffered."""
        chunks = self.chunks
        if not chunks:
            return None
        chunk = chunks.popleft()
        self.buffered -= len(chunk)
        if self.read_paused and self.buffered <= LOW_WATER:
            self._resume_reading()
        return chunk

    def take_whole(self, limit: int | None) -> bytes | None:
        """The whole body at once if it has all arrived and is at most `limit` bytes, else None."""
        phase = self.phase
        if phase is not _REUSABLE and phase is not _SPENT:
            return None
        if limit is not None and self.buffered > limit:
            return None
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
            phase = self.phase
            if phase is _REUSABLE or phase is _SPENT:
                return None
            if self.error is not None:
                error, self.error = self.error, None
                raise error
            if phase is _CLOSED:
                raise UpstreamReset("upstream connection closed", response_started=True)
            self.timed_out = False
            self.deadline = self.loop.time() + idle_timeout
            ticker = self.ticker
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
        return self.phase is _REUSABLE

    def recycle(self) -> None:
        """Forget the finished exchange so the connection can park in the idle list."""
        self.phase = _IDLE
        self.reused = True
        self.response = None
        self.error = None
        if self.head_only:
            # llhttp still waits for the body a HEAD response announced: start afresh.
            self.parser = HttpResponseParser(self)
        if self.chunks:
            self.chunks.clear()
            self.buffered = 0
        if self.read_paused:
            self._resume_reading()

    def abort(self) -> None:
        """Drop the connection now (unread data or a broken exchange)."""
        self._shut()
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.abort()

    def close(self) -> None:
        """Close gracefully (the exchange finished, the connection is just not reused)."""
        self._shut()
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.close()

    # -- internals -------------------------------------------------------------------------

    def _complete(self) -> None:
        self.phase = _REUSABLE if self.keep_alive else _SPENT

    def _spoil(self) -> None:
        """The framing can no longer be trusted: never reuse the connection."""
        self.keep_alive = False
        if self.phase is _REUSABLE:
            self.phase = _SPENT

    def _shut(self) -> None:
        """The phase of a connection we close: a complete response stays complete."""
        phase = self.phase
        if phase is _REUSABLE:
            self.phase = _SPENT
        elif phase is not _SPENT:
            self.phase = _CLOSED

    def _resume_reading(self) -> None:
        self.read_paused = False
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.resume_reading()

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
        """Called by the ticker once `deadline` has passed."""
        self.timed_out = True
        self._wake()

    def _fail(self, error: UpstreamError) -> None:
        if self.complete:
            self._spoil()  # the response is whole; only what followed it is bad
        elif self.error is None:
            self.error = error
        self.abort()
        self._wake()


class _Unexpected(Exception):
    """Raised inside a parser callback to stop parsing bytes that no request asked for."""
