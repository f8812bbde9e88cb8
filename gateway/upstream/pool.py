"""UpstreamPool: bounded, LIFO, keep-alive connections to one upstream origin."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

from gateway.upstream._request import IDEMPOTENT_METHODS, Body, encode_head
from gateway.upstream._ticker import Ticker
from gateway.upstream.connection import Connection, Phase
from gateway.upstream.errors import (
    UpstreamConnectError,
    UpstreamReset,
    UpstreamTimeout,
)
from gateway.upstream.origin import parse_origin
from gateway.upstream.response import UpstreamResponse

__all__ = ["UpstreamPool"]

_IDLE = Phase.IDLE


class UpstreamPool:
    """HTTP/1.1 keep-alive connections to one `http://host:port` upstream.

    At most `max_connections` are open; further callers wait (bounded by their timeout).
    Idle connections are reused newest-first and closed after `idle_timeout` seconds.
    Create it anywhere; it binds to the running loop on first use. It is its connections'
    `ConnectionHooks` (`released`, `idle_lost`).
    """

    def __init__(
        self,
        url: str,
        *,
        max_connections: int = 256,
        connect_timeout: float = 2.0,
        idle_timeout: float = 60.0,
    ) -> None:
        origin = parse_origin(url)  # ValueError on anything but http://host[:port]
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.url = url
        self.host = origin.host
        self.port = origin.port
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: list[Connection] = []  # oldest first; reuse pops the newest
        self._waiters: deque[asyncio.Future[Connection | None]] = deque()
        self._open = 0  # slots: open + connecting connections
        self._in_use = 0
        self._closed = False
        self._sweep: asyncio.TimerHandle | None = None
        self._ticker = Ticker()

    @property
    def stats(self) -> dict[str, int]:
        """Connection counts: open (incl. connecting), idle, in_use, waiting callers."""
        return {
            "open": self._open,
            "idle": len(self._idle),
            "in_use": self._in_use,
            "waiting": len(self._waiters),
        }

    async def exchange(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: Body,
        *,
        timeout: float,  # noqa: ASYNC109 - the port's contract; enforced by a coarse ticker
        idempotent: bool | None = None,
    ) -> UpstreamResponse:
        """Send a request and return the final response head; the body is read from it.

        `timeout` bounds waiting for a connection, connecting, sending and the response head.
        A reused connection that fails before any response byte is retried once on a fresh one
        when the request is idempotent (its method, or `idempotent=True`) and not streamed.
        The caller must read the body or call `release()`.

        Raises an UpstreamError subclass when the upstream fails; BodyLengthMismatch or
        ValueError for a malformed request; whatever the caller's body iterator raises (a client
        that went away) propagates unchanged. In every failure the connection is closed.
        """
        loop = self._loop
        if loop is None:
            loop = self._bind()
        deadline = loop.time() + timeout
        head, stream_length = encode_head(method, target, headers, body)
        payload: bytes | bytearray | None = None
        stream: AsyncIterator[bytes] | None = None
        if isinstance(body, (bytes, bytearray)):
            payload = body
        elif body is not None:
            stream = body
        retry = stream is None and (
            method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        )
        idle = self._idle
        if idle and idle[-1].phase is _IDLE:
            conn = idle.pop()  # _acquire()'s first step, without a coroutine: the common case
        else:
            conn = await self._acquire(deadline)
        self._in_use += 1
        while True:
            reused = conn.reused
            try:
                return await conn.exchange(
                    head, payload, stream, stream_length, deadline, method == "HEAD"
                )
            except UpstreamReset as exc:
                # The server closed a keep-alive connection as we reused it (Go's rule).
                if retry and reused and not exc.response_started:
                    retry = False
                    try:
                        conn = await self._connect(deadline)  # keeps the same slot
                    except BaseException:
                        self._in_use -= 1
                        raise
                    continue
                self._in_use -= 1
                self._free_slot()
                raise
            except BaseException:
                self._in_use -= 1
                self._free_slot()
                raise

    async def close(self) -> None:
        """Close idle connections now, in-use ones on release; later exchanges fail."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(UpstreamConnectError("pool closed", request_sent=False))
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
            self._open -= 1
        lost = [conn.lost for conn in idle if not conn.lost.done()]
        if lost:
            # Let the transports finish closing so the loop can shut down cleanly.
            await asyncio.wait(lost, timeout=1.0)

    # -- slots and connections -------------------------------------------------------------

    def _bind(self) -> asyncio.AbstractEventLoop:
        self._loop = asyncio.get_running_loop()
        return self._loop

    async def _acquire(self, deadline: float) -> Connection:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.phase is _IDLE:
                return conn
            self._free_slot()  # closed while parked; its connection_lost will not find it
        if self._closed:
            raise UpstreamConnectError("pool closed", request_sent=False)
        if self._open < self.max_connections:
            self._open += 1
            return await self._connect(deadline)
        loop = self._loop
        assert loop is not None
        waiter: asyncio.Future[Connection | None] = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_at(deadline, _expire_waiter, waiter)
        try:
            got = await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Handed a connection or slot just as we were cancelled: pass it on.
                handed = waiter.result()
                if handed is None:
                    self._free_slot()
                else:
                    self._park(handed)
            else:
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass
            raise
        finally:
            timer.cancel()
        if got is None:
            return await self._connect(deadline)  # a slot was freed for us
        return got

    async def _connect(self, deadline: float) -> Connection:
        """Open a connection in an already-taken slot; the slot is freed if that fails."""
        loop = self._loop
        assert loop is not None
        connect_deadline = min(deadline, loop.time() + self.connect_timeout)
        try:
            async with asyncio.timeout_at(connect_deadline):
                _, conn = await loop.create_connection(
                    lambda: Connection(self, self._ticker, loop), self.host, self.port
                )
        except TimeoutError:
            self._free_slot()
            raise UpstreamTimeout(f"connect to {self.url} timed out", request_sent=False) from None
        except OSError as exc:
            self._free_slot()
            raise UpstreamConnectError(
                f"connect to {self.url} failed: {exc}", request_sent=False
            ) from exc
        except BaseException:
            self._free_slot()
            raise
        return conn

    # -- ConnectionHooks -------------------------------------------------------------------

    def released(self, conn: Connection) -> None:
        """The exchange on `conn` is over (UpstreamResponse.release()): park it or close it."""
        self._in_use -= 1
        if conn.reusable and not self._closed:
            conn.recycle()
            self._park(conn)
            return
        if conn.complete:
            conn.close()
        else:
            conn.abort()
        self._free_slot()

    def idle_lost(self, conn: Connection) -> None:
        """Parked `conn` closed (the upstream hung up, or sent bytes unasked): forget it."""
        try:
            self._idle.remove(conn)
        except ValueError:
            return  # already taken out (expired, or popped by _acquire)
        self._free_slot()

    # -- parking -----------------------------------------------------------------------------

    def _park(self, conn: Connection) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        loop = self._loop
        assert loop is not None
        conn.idle_since = loop.time()
        self._idle.append(conn)
        if self._sweep is None:
            self._sweep = loop.call_at(conn.idle_since + self.idle_timeout, self._expire_idle)

    def _free_slot(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the waiter connects in this slot
                return
        self._open -= 1

    def _expire_idle(self) -> None:
        self._sweep = None
        loop = self._loop
        assert loop is not None
        # 1 ms of slack: uvloop's timers have millisecond resolution and may fire a bit early.
        cutoff = loop.time() - self.idle_timeout + 0.001
        idle = self._idle
        n = 0
        # The list is in parking order, so the expired ones are a prefix.
        while n < len(idle) and idle[n].idle_since <= cutoff:
            n += 1
        if n:
            expired = idle[:n]
            del idle[:n]
            for conn in expired:
                conn.close()
                self._free_slot()
        if idle:
            self._sweep = loop.call_at(idle[0].idle_since + self.idle_timeout, self._expire_idle)


def _expire_waiter(waiter: asyncio.Future[Connection | None]) -> None:
    if not waiter.done():
        waiter.set_exception(
            UpstreamTimeout("no free upstream connection within the timeout", request_sent=False)
        )
