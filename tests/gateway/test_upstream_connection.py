"""One upstream Connection on its own, against raw servers on loopback: its phases, the reuse they
imply, and what it tells its owner through ConnectionHooks (a recording fake here, the pool in
production)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from gateway.upstream import UpstreamReset
from gateway.upstream._request import encode_head
from gateway.upstream._ticker import Ticker
from gateway.upstream.connection import Connection, Phase

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
GET, _ = encode_head("GET", "/", [("Host", "t")], None)
HEAD, _ = encode_head("HEAD", "/", [("Host", "t")], None)

pytestmark = pytest.mark.timeout(30)


class Owner:
    """A ConnectionHooks that records what the connection tells it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Connection]] = []

    def released(self, conn: Connection) -> None:
        self.calls.append(("released", conn))

    def idle_lost(self, conn: Connection) -> None:
        self.calls.append(("idle_lost", conn))


@contextlib.asynccontextmanager
async def connected(handler: Handler) -> AsyncIterator[tuple[Connection, Owner]]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await handler(reader, writer)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    owner = Owner()
    _, conn = await loop.create_connection(
        lambda: Connection(owner, Ticker(), loop), "127.0.0.1", port
    )
    try:
        yield conn, owner
    finally:
        conn.abort()
        server.close()
        await asyncio.wait_for(conn.lost, 5)


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(raw)
    await writer.drain()


async def exchange(conn: Connection, head: bytes = GET) -> None:
    loop = asyncio.get_running_loop()
    await conn.exchange(head, None, None, None, loop.time() + 5, head == HEAD)


async def until(check: Callable[[], bool], within: float = 5.0) -> None:
    """Poll a condition that depends on the loop delivering callbacks."""
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_keep_alive_exchange_ends_reusable_and_parks_idle() -> None:
    async def two(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for body in (b"one", b"two"):
            await answer(reader, writer, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n" + body)

    async with connected(two) as (conn, owner):
        assert conn.phase is Phase.SENDING  # created for an exchange
        await exchange(conn)
        assert conn.response is not None
        assert await conn.response.read() == b"one"
        assert conn.phase is Phase.REUSABLE and conn.reusable
        assert owner.calls == [("released", conn)]  # read to the end: back to its owner
        conn.recycle()
        assert conn.phase is Phase.IDLE and conn.reused
        await exchange(conn)
        assert conn.phase is Phase.REUSABLE
        assert await conn.response.read() == b"two"


async def test_connection_close_or_an_early_answer_spends_the_connection() -> None:
    async def close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raw = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
        await answer(reader, writer, raw)
        await asyncio.sleep(1)

    async with connected(close) as (conn, owner):
        await exchange(conn)
        await until(lambda: conn.complete)
        assert conn.phase is Phase.SPENT and not conn.reusable


async def test_a_body_ending_at_eof_is_complete_but_spent() -> None:
    async def http10(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer(reader, writer, b"HTTP/1.0 200 OK\r\n\r\nuntil the end")

    async with connected(http10) as (conn, owner):
        await exchange(conn)
        assert conn.phase in (Phase.BODY_TO_EOF, Phase.SPENT)
        assert conn.response is not None
        assert await conn.response.read() == b"until the end"
        assert conn.phase is Phase.SPENT


async def test_head_response_is_complete_at_its_head() -> None:
    async def head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer(reader, writer, b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n")
        await asyncio.sleep(1)

    async with connected(head) as (conn, owner):
        await exchange(conn, HEAD)
        assert conn.phase is Phase.REUSABLE


async def test_closed_before_the_response_is_closed_with_a_reset() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")

    async with connected(hang_up) as (conn, owner):
        with pytest.raises(UpstreamReset) as info:
            await exchange(conn)
        assert info.value.response_started is False
        assert conn.phase is Phase.CLOSED and not conn.complete


@pytest.mark.parametrize("unasked", [b"", b"HTTP/1.1 408 Request Timeout\r\n\r\n"])
async def test_a_parked_connection_that_closes_or_talks_is_lost_to_its_owner(
    unasked: bytes,
) -> None:
    spoke = asyncio.Event()

    async def then(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer(reader, writer, b"HTTP/1.1 204 No Content\r\n\r\n")
        await spoke.wait()
        writer.write(unasked)  # bytes nobody asked for, or (empty) just the close that follows

    async with connected(then) as (conn, owner):
        await exchange(conn)
        assert conn.response is not None
        conn.response.release()
        conn.recycle()
        spoke.set()
        await until(lambda: len(owner.calls) == 2)
        assert owner.calls == [("released", conn), ("idle_lost", conn)]
        assert conn.phase is Phase.CLOSED
        await asyncio.wait_for(conn.lost, 5)
        assert len(owner.calls) == 2  # told once, not again when the transport is gone
