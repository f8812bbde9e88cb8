"""UpstreamPool against real servers on loopback: aiohttp apps and raw asyncio servers that misbehave.

Every scenario runs under both the default asyncio loop and uvloop (the `run` fixture).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any

import pytest
import uvloop
from aiohttp import web

from gateway.upstream import (
    BodyLengthMismatch,
    BodyTooLarge,
    UpstreamConnectError,
    UpstreamPool,
    UpstreamProtocolError,
    UpstreamReset,
    UpstreamTimeout,
    parse_origin,
)
from gateway.upstream._request import encode_head
from tests.support import procs

Run = Callable[[Coroutine[Any, Any, Any]], Any]
RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}
MB = 1024 * 1024
H = [("Host", "upstream.test")]  # aiohttp rejects HTTP/1.1 requests without Host


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Iterator[Run]:
    """Run a scenario coroutine to completion on a fresh loop of the parametrised kind."""
    with asyncio.Runner(loop_factory=LOOPS[request.param]) as runner:

        def run_(coro: Coroutine[Any, Any, Any]) -> Any:
            async def bounded() -> Any:
                async with asyncio.timeout(60):
                    return await coro

            return runner.run(bounded())

        yield run_


# -- servers ---------------------------------------------------------------------------------


class AppServer:
    """An aiohttp app on an ephemeral port that records the client connection of each request."""

    def __init__(self, app: web.Application) -> None:
        self.peers: list[tuple[str, int]] = []
        app.middlewares.append(self._record)
        self.runner = web.AppRunner(app, handle_signals=False)
        self.url = ""

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        assert request.transport is not None
        self.peers.append(request.transport.get_extra_info("peername"))
        return await handler(request)

    @property
    def connections(self) -> int:
        return len(set(self.peers))


@contextlib.asynccontextmanager
async def app_server(routes: list[web.RouteDef]) -> AsyncIterator[AppServer]:
    app = web.Application()
    app.add_routes(routes)
    server = AppServer(app)
    await server.runner.setup()
    site = web.TCPSite(server.runner, "127.0.0.1", 0)
    await site.start()
    assert site._server is not None
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    server.url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        await server.runner.cleanup()


class RawServer:
    """A raw asyncio TCP server running `handler` per connection; counts connections."""

    def __init__(self, handler: RawHandler) -> None:
        self.handler = handler
        self.connections = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.writers: list[asyncio.StreamWriter] = []
        self.url = ""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)  # type: ignore[arg-type]
        self.writers.append(writer)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def raw_server(handler: RawHandler) -> AsyncIterator[RawServer]:
    server = RawServer(handler)
    srv = await asyncio.start_server(server._serve, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    server.url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        srv.close()
        # End handlers by closing their sockets (cancelling them makes asyncio log noise).
        for writer in server.writers:
            writer.transport.abort()
        if server.tasks:
            _, pending = await asyncio.wait(server.tasks, timeout=5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await srv.wait_closed()


async def read_head(reader: asyncio.StreamReader) -> bytes:
    """One request head (raw servers never get request bodies unless they read them)."""
    return await reader.readuntil(b"\r\n\r\n")


@contextlib.asynccontextmanager
async def pool_for(url: str, **kwargs: Any) -> AsyncIterator[UpstreamPool]:
    pool = UpstreamPool(url, **kwargs)
    try:
        yield pool
    finally:
        await pool.close()


async def get(pool: UpstreamPool, target: str = "/", **kwargs: Any) -> tuple[int, bytes]:
    resp = await pool.exchange("GET", target, H, None, timeout=5, **kwargs)
    try:
        return resp.status, await resp.read()
    finally:
        resp.release()


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    """Poll a condition that depends on the loop delivering callbacks."""
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="hello")


# -- request encoding (pure) -----------------------------------------------------------------


def test_head_framing_per_body_kind() -> None:
    async def gen() -> AsyncIterator[bytes]:
        yield b"x"

    head, length = encode_head("GET", "/a?b=1", [("Host", "h"), ("X-A", "1")], None)
    assert head == b"GET /a?b=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n" and length is None
    head, _ = encode_head("POST", "/", [("Host", "h")], None)
    assert b"Content-Length: 0\r\n" in head
    head, _ = encode_head("PUT", "/", [("Content-Length", "3"), ("Transfer-Encoding", "x")], b"abc")
    assert head.count(b"Content-Length") == 1 and b"Transfer-Encoding" not in head
    head, length = encode_head("POST", "/", [], gen())
    assert b"Transfer-Encoding: chunked\r\n" in head and length is None
    head, length = encode_head("POST", "/", [("content-length", "5")], gen())
    assert b"Content-Length: 5\r\n" in head and b"chunked" not in head and length == 5


def test_head_rejects_injection_and_bad_lengths() -> None:
    with pytest.raises(ValueError, match="CR or LF"):
        encode_head("GET", "/", [("X-A", "1\r\nX-Evil: 1")], None)
    with pytest.raises(ValueError, match="CR or LF"):
        encode_head("GET", "/ HTTP/1.1\r\nX: y\r\n\r\nGET /", [], None)
    with pytest.raises(BodyLengthMismatch):
        encode_head("POST", "/", [("Content-Length", "4")], b"abc")
    with pytest.raises(BodyLengthMismatch):
        encode_head("POST", "/", [("Content-Length", "-1")], None)


def test_https_is_refused_at_construction() -> None:
    # The same rule and texts as routes.yaml's `url` (gateway.upstream.origin).
    with pytest.raises(ValueError, match="https upstreams are not supported"):
        UpstreamPool("https://127.0.0.1:1")
    with pytest.raises(ValueError, match="url must be http://host"):
        UpstreamPool("ftp://127.0.0.1:1")
    with pytest.raises(ValueError, match="must not carry a path"):
        UpstreamPool("http://127.0.0.1:1/api")
    with pytest.raises(ValueError, match="bad port"):
        UpstreamPool("http://127.0.0.1:99999")


def test_origin_of_an_upstream_url() -> None:
    assert parse_origin("http://127.0.0.1:8101") == ("127.0.0.1", 8101)
    assert parse_origin("http://[::1]:9/") == ("::1", 9)
    assert parse_origin("http://orders") == ("orders", 80)


# -- keep-alive and pooling ------------------------------------------------------------------


def test_sequential_requests_reuse_one_connection(run: Run) -> None:
    async def scenario() -> None:
        async with app_server([web.get("/", hello)]) as srv, pool_for(srv.url) as pool:
            for _ in range(20):
                assert await get(pool) == (200, b"hello")
            assert srv.connections == 1
            assert pool.stats == {"open": 1, "idle": 1, "in_use": 0, "waiting": 0}

    run(scenario())


def test_pool_limit_makes_callers_wait(run: Run) -> None:
    async def scenario() -> None:
        gate = asyncio.Event()

        async def slow(request: web.Request) -> web.Response:
            await gate.wait()
            return web.Response(text="ok")

        async with (
            app_server([web.get("/", slow)]) as srv,
            pool_for(srv.url, max_connections=2) as pool,
        ):
            tasks = [asyncio.create_task(get(pool)) for _ in range(6)]
            await eventually(lambda: len(srv.peers) == 2 and pool.stats["waiting"] == 4)
            assert pool.stats == {"open": 2, "idle": 0, "in_use": 2, "waiting": 4}
            gate.set()
            assert await asyncio.gather(*tasks) == [(200, b"ok")] * 6
            assert srv.connections == 2
            assert pool.stats == {"open": 2, "idle": 2, "in_use": 0, "waiting": 0}

    run(scenario())


def test_waiting_for_a_connection_is_bounded_by_timeout(run: Run) -> None:
    async def scenario() -> None:
        gate = asyncio.Event()

        async def slow(request: web.Request) -> web.Response:
            await gate.wait()
            return web.Response(text="ok")

        async with (
            app_server([web.get("/", slow)]) as srv,
            pool_for(srv.url, max_connections=1) as pool,
        ):
            holder = asyncio.create_task(get(pool))
            await eventually(lambda: pool.stats["in_use"] == 1)
            started = time.monotonic()
            with pytest.raises(UpstreamTimeout) as info:
                await pool.exchange("GET", "/", H, None, timeout=0.3)
            assert 0.25 < time.monotonic() - started < 2.0
            assert info.value.request_sent is False
            assert pool.stats["waiting"] == 0
            gate.set()
            assert await holder == (200, b"ok")
            assert pool.stats == {"open": 1, "idle": 1, "in_use": 0, "waiting": 0}

    run(scenario())


def test_idle_connections_expire(run: Run) -> None:
    async def scenario() -> None:
        async with (
            app_server([web.get("/", hello)]) as srv,
            pool_for(srv.url, idle_timeout=0.2) as pool,
        ):
            await get(pool)
            assert pool.stats["idle"] == 1
            await eventually(lambda: pool.stats["open"] == 0)
            assert pool.stats == {"open": 0, "idle": 0, "in_use": 0, "waiting": 0}
            assert await get(pool) == (200, b"hello")
            assert srv.connections == 2

    run(scenario())


def test_peer_closing_an_idle_connection_is_noticed(run: Run) -> None:
    async def close_after_answer(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await asyncio.sleep(0.05)  # close while the client holds it idle

    async def scenario() -> None:
        async with raw_server(close_after_answer) as srv, pool_for(srv.url) as pool:
            assert await get(pool) == (200, b"ok")
            await eventually(lambda: pool.stats["idle"] == 0)
            assert pool.stats["open"] == 0
            assert await get(pool) == (200, b"ok")
            assert srv.connections == 2

    run(scenario())


# -- response framing ------------------------------------------------------------------------


def test_content_length_chunked_and_until_close_bodies(run: Run) -> None:
    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(5):
            await resp.write(b"part%d;" % i)
        await resp.write_eof()
        return resp

    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst;")
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.write(b"second")

    async def scenario() -> None:
        async with app_server([web.get("/len", hello), web.get("/chunked", chunked)]) as srv:
            async with pool_for(srv.url) as pool:
                resp = await pool.exchange("GET", "/len", H, None, timeout=5)
                assert (resp.content_length, resp.chunked, resp.keep_alive) == (5, False, True)
                assert await resp.read() == b"hello"
                resp = await pool.exchange("GET", "/chunked", H, None, timeout=5)
                assert (resp.content_length, resp.chunked, resp.keep_alive) == (None, True, True)
                assert (
                    b"".join([c async for c in resp.iter_chunks(5)])
                    == b"part0;part1;part2;part3;part4;"
                )
                assert srv.connections == 1 and pool.stats["idle"] == 1
        async with raw_server(until_close) as raw, pool_for(raw.url) as pool:
            resp = await pool.exchange("GET", "/", H, None, timeout=5)
            assert (resp.content_length, resp.chunked, resp.keep_alive) == (None, False, False)
            assert await resp.read() == b"first;second"
            assert pool.stats == {"open": 0, "idle": 0, "in_use": 0, "waiting": 0}

    run(scenario())


def test_bodiless_responses_keep_the_connection_usable(run: Run) -> None:
    """HEAD with a Content-Length, 204 and 304 carry no body; the next exchange still parses."""

    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await read_head(reader)
            if head.startswith(b"HEAD"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
            elif b"/204" in head:
                writer.write(b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n")
            elif b"/304" in head:
                writer.write(b'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\n')
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nget")
            await writer.drain()

    async def scenario() -> None:
        async with raw_server(server) as srv, pool_for(srv.url) as pool:
            for method, target, status in [
                ("HEAD", "/", 200),
                ("GET", "/", 200),
                ("GET", "/204", 204),
                ("GET", "/", 200),
                ("GET", "/304", 304),
                ("HEAD", "/", 200),
                ("GET", "/", 200),
            ]:
                resp = await pool.exchange(method, target, [], None, timeout=5)
                assert resp.status == status
                body = await resp.read()
                assert body == (b"get" if status == 200 and method == "GET" else b"")
                if method == "HEAD":
                    assert resp.content_length == 1234
            assert srv.connections == 1

    run(scenario())


def test_interim_responses_are_skipped(run: Run) -> None:
    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\nX-Final: yes\r\n\r\ndone")
        await writer.drain()
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    async def scenario() -> None:
        async with raw_server(server) as srv, pool_for(srv.url) as pool:
            resp = await pool.exchange(
                "POST", "/", [*H, ("Expect", "100-continue")], b"data", timeout=5
            )
            assert (resp.status, resp.reason) == (201, "Created")
            assert resp.headers == [("Content-Length", "4"), ("X-Final", "yes")]
            assert await resp.read() == b"done"
            assert await get(pool) == (200, b"ok")
            assert srv.connections == 1

    run(scenario())


def test_duplicate_headers_are_kept_in_order(run: Run) -> None:
    async def cookies(request: web.Request) -> web.Response:
        resp = web.Response(text="c")
        resp.headers.add("Set-Cookie", "a=1; Path=/")
        resp.headers.add("X-Mid", "m")
        resp.headers.add("Set-Cookie", "b=2; Path=/")
        return resp

    async def scenario() -> None:
        async with app_server([web.get("/", cookies)]) as srv, pool_for(srv.url) as pool:
            resp = await pool.exchange("GET", "/", H, None, timeout=5)
            names = [(k, v) for k, v in resp.headers if k in ("Set-Cookie", "X-Mid")]
            assert names == [
                ("Set-Cookie", "a=1; Path=/"),
                ("X-Mid", "m"),
                ("Set-Cookie", "b=2; Path=/"),
            ]
            await resp.read()

    run(scenario())


def test_non_ascii_header_values(run: Run) -> None:
    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_head(reader)
        echoed = head.split(b"X-Name: ")[1].split(b"\r\n")[0]
        writer.write(
            b"HTTP/1.1 200 OK\r\nX-Utf8: "
            + echoed
            + b"\r\nX-Latin1: caf\xe9\r\nContent-Length: 0\r\n\r\n"
        )
        await writer.drain()
        await reader.read()

    async def scenario() -> None:
        async with raw_server(server) as srv, pool_for(srv.url) as pool:
            resp = await pool.exchange("GET", "/", [*H, ("X-Name", "Zoë")], None, timeout=5)
            assert dict(resp.headers) == {
                "X-Utf8": "Zoë",
                "X-Latin1": "café",
                "Content-Length": "0",
            }
            resp.release()

    run(scenario())


def test_connection_close_from_server_is_not_reused(run: Run) -> None:
    async def closing(request: web.Request) -> web.Response:
        return web.Response(text="bye", headers={"Connection": "close"})

    async def http10(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await reader.read()

    async def scenario() -> None:
        async with app_server([web.get("/", closing)]) as srv, pool_for(srv.url) as pool:
            for _ in range(3):
                resp = await pool.exchange("GET", "/", H, None, timeout=5)
                assert resp.keep_alive is False
                assert await resp.read() == b"bye"
                assert pool.stats["open"] == 0
            assert srv.connections == 3
        async with raw_server(http10) as raw, pool_for(raw.url) as pool:
            resp = await pool.exchange("GET", "/", H, None, timeout=5)
            assert resp.keep_alive is False and await resp.read() == b"ok"
            assert pool.stats["open"] == 0

    run(scenario())


def test_read_limit(run: Run) -> None:
    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 100_000)

    async def scenario() -> None:
        async with app_server([web.get("/", big)]) as srv, pool_for(srv.url) as pool:
            resp = await pool.exchange("GET", "/", H, None, timeout=5)
            try:
                with pytest.raises(BodyTooLarge) as info:
                    await resp.read(limit=1000)
                rest = b"".join([c async for c in resp.iter_chunks(5)])
                assert len(info.value.partial) + len(rest) == 100_000
            finally:
                resp.release()
            assert pool.stats["idle"] == 1

    run(scenario())


# -- request bodies --------------------------------------------------------------------------


async def echo_digest(request: web.Request) -> web.Response:
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.content.iter_any():
        digest.update(chunk)
        size += len(chunk)
    te = request.headers.get("Transfer-Encoding", "-")
    cl = request.headers.get("Content-Length", "-")
    return web.Response(text=f"{size} {digest.hexdigest()} te={te} cl={cl}")


def test_request_body_framing(run: Run) -> None:
    parts = [b"alpha-", b"", b"beta-" * 1000, b"gamma"]
    whole = b"".join(parts)

    async def gen() -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    async def send(
        pool: UpstreamPool, method: str, headers: list[tuple[str, str]], body: Any
    ) -> str:
        resp = await pool.exchange(method, "/", headers, body, timeout=5)
        assert resp.status == 200
        return (await resp.read()).decode()

    digest = hashlib.sha256(whole).hexdigest()

    async def scenario() -> None:
        async with app_server([web.route("*", "/", echo_digest)]) as srv:
            async with pool_for(srv.url) as pool:
                assert (
                    await send(pool, "POST", H, gen()) == f"{len(whole)} {digest} te=chunked cl=-"
                )
                assert (
                    await send(pool, "PUT", H, whole)
                    == f"{len(whole)} {digest} te=- cl={len(whole)}"
                )
                cl = [*H, ("Content-Length", str(len(whole)))]
                assert (
                    await send(pool, "POST", cl, gen())
                    == f"{len(whole)} {digest} te=- cl={len(whole)}"
                )
                empty = hashlib.sha256(b"").hexdigest()
                assert await send(pool, "POST", H, None) == f"0 {empty} te=- cl=0"
                assert srv.connections == 1
                with pytest.raises(BodyLengthMismatch):
                    await send(pool, "POST", [*H, ("Content-Length", str(len(whole) + 1))], gen())
                assert pool.stats == {"open": 0, "idle": 0, "in_use": 0, "waiting": 0}

    run(scenario())


def test_big_response_body_is_streamed_with_bounded_buffering(run: Run) -> None:
    size = 50 * MB
    block = bytes(range(256)) * 256  # 64 KiB

    async def big(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_length = size
        await resp.prepare(request)
        for _ in range(size // len(block)):
            await resp.write(block)
        return resp

    async def scenario() -> None:
        async with app_server([web.get("/", big)]) as srv, pool_for(srv.url) as pool:
            resp = await pool.exchange("GET", "/", H, None, timeout=5)
            conn = resp._conn
            assert conn is not None
            received = 0
            peak = 0
            digest = hashlib.sha256()
            async for chunk in resp.iter_chunks(10):
                received += len(chunk)
                digest.update(chunk)
                peak = max(peak, conn.buffered)
                if received < 5 * MB:
                    await asyncio.sleep(0.002)  # a slow client while the upstream races ahead
            assert received == size
            assert digest.hexdigest() == hashlib.sha256(block * (size // len(block))).hexdigest()
            # Reading pauses at 256 KiB buffered; one more read may land before it takes effect.
            assert 0 < peak <= 1 * MB
            assert pool.stats["idle"] == 1

    run(scenario())


def test_big_request_body_respects_write_flow_control(run: Run) -> None:
    size = 50 * MB
    chunk = b"z" * (256 * 1024)
    received = 0
    max_in_flight = 0
    yielded = 0

    async def slow_reader(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal received
        # A fixed receive buffer turns off the kernel's autotuning (up to 32 MB here), so what
        # is in flight is bounded by our flow control, not by how big the kernel lets it grow.
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
        await read_head(reader)
        while received < size:
            data = await reader.read(256 * 1024)
            if not data:
                return
            received += len(data)
            if received < 10 * MB:
                await asyncio.sleep(0.001)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await reader.read()

    async def gen() -> AsyncIterator[bytes]:
        nonlocal yielded, max_in_flight
        while yielded < size:
            max_in_flight = max(max_in_flight, yielded - received)
            yielded += len(chunk)
            yield chunk

    async def scenario() -> None:
        async with raw_server(slow_reader) as srv, pool_for(srv.url) as pool:
            headers = [*H, ("Content-Length", str(size))]
            resp = await pool.exchange("POST", "/", headers, gen(), timeout=30)
            assert (resp.status, await resp.read()) == (200, b"ok")
            assert received == size
            # Without write flow control the whole 50 MB would sit in the transport's buffer;
            # with it only the kernel's socket buffers and 256 KiB of ours are in flight.
            assert max_in_flight < 12 * MB, max_in_flight

    run(scenario())


def test_early_response_stops_the_upload(run: Run) -> None:
    """An upstream that answers (413) without reading the body gets no more of it."""
    yielded = 0

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\n\r\nbig")
        await writer.drain()
        await writer.wait_closed()  # neither reads nor closes

    async def endless() -> AsyncIterator[bytes]:
        nonlocal yielded
        while True:
            yielded += 64 * 1024
            yield b"u" * (64 * 1024)

    async def scenario() -> None:
        async with raw_server(refuse) as srv, pool_for(srv.url) as pool:
            resp = await pool.exchange("POST", "/", H, endless(), timeout=10)
            assert (resp.status, await resp.read()) == (413, b"big")
            assert yielded < 64 * MB
            assert pool.stats["open"] == 0  # the request was cut short: never reused

    run(scenario())


def test_stalled_upload_times_out(run: Run) -> None:
    async def reader_only(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async def stalled() -> AsyncIterator[bytes]:
        yield b"first"
        await asyncio.sleep(30)  # the client stopped sending
        yield b"never"

    async def scenario() -> None:
        async with raw_server(reader_only) as srv, pool_for(srv.url) as pool:
            started = time.monotonic()
            with pytest.raises(UpstreamTimeout) as info:
                await pool.exchange("POST", "/", H, stalled(), timeout=0.3)
            assert 0.25 < time.monotonic() - started < 1.5
            assert info.value.response_started is False
            assert pool.stats == {"open": 0, "idle": 0, "in_use": 0, "waiting": 0}

    run(scenario())


# -- failures --------------------------------------------------------------------------------


def test_stale_reused_connection_is_retried_for_get_but_not_post(run: Run) -> None:
    """The server drops a kept-alive connection as the next request arrives (the idle race)."""

    async def one_per_connection(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        head = await read_head(reader)
        if b"Content-Length: " in head:
            await reader.readexactly(int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0]))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await read_head(reader)
        writer.transport.abort()  # closed without a response byte

    async def scenario() -> None:
        async with raw_server(one_per_connection) as srv, pool_for(srv.url) as pool:
            assert await get(pool) == (200, b"ok")
            assert await get(pool) == (200, b"ok")  # reused -> reset -> retried on a fresh one
            assert srv.connections == 2
            with pytest.raises(UpstreamReset) as info:
                await pool.exchange("POST", "/", H, b"x", timeout=5)  # reused: not retried
            assert info.value.response_started is False
            assert info.value.kind == "reset"
            assert srv.connections == 2
            resp = await pool.exchange("POST", "/", H, b"x", timeout=5)  # a fresh connection
            assert await resp.read() == b"ok"
            assert srv.connections == 3
            # idempotent=True opts a POST into the retry.
            resp = await pool.exchange("POST", "/", H, b"x", timeout=5, idempotent=True)
            assert await resp.read() == b"ok"
            assert srv.connections == 4
            assert pool.stats["in_use"] == 0 and pool.stats["open"] == pool.stats["idle"]

    run(scenario())


def test_no_retry_once_the_response_started(run: Run) -> None:
    async def partial_second(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 O")
        await writer.drain()
        writer.transport.abort()

    async def scenario() -> None:
        async with raw_server(partial_second) as srv, pool_for(srv.url) as pool:
            assert await get(pool) == (200, b"ok")
            with pytest.raises(UpstreamReset) as info:
                await get(pool)
            assert info.value.response_started is True
            assert srv.connections == 1
            assert pool.stats["open"] == 0

    run(scenario())


def test_connection_refused_fails_fast(run: Run) -> None:
    async def scenario() -> None:
        async with pool_for(f"http://127.0.0.1:{procs.free_port()}") as pool:
            started = time.monotonic()
            with pytest.raises(UpstreamConnectError) as info:
                await pool.exchange("GET", "/", H, None, timeout=5)
            assert time.monotonic() - started < 1.0
            assert info.value.kind == "connect" and info.value.request_sent is False
            assert pool.stats == {"open": 0, "idle": 0, "in_use": 0, "waiting": 0}

    run(scenario())


def test_silent_server_times_out(run: Run) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async def scenario() -> None:
        async with raw_server(silent) as srv, pool_for(srv.url) as pool:
            started = time.monotonic()
            with pytest.raises(UpstreamTimeout) as info:
                await pool.exchange("GET", "/", H, None, timeout=0.3)
            assert 0.25 < time.monotonic() - started < 1.5
            assert info.value.response_started is False and info.value.request_sent is True
            assert pool.stats == {"open": 0, "idle": 0, "in_use": 0, "waiting": 0}
            await eventually(lambda: all(t.done() for t in srv.tasks))  # the server saw EOF

    run(scenario())


def test_reset_and_stall_mid_body(run: Run) -> None:
    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"a" * 100)
        await writer.drain()
        if b"/reset" in head:
            await asyncio.sleep(0.05)
            writer.transport.abort()
        else:
            await reader.read()

    async def scenario() -> None:
        async with raw_server(server) as srv, pool_for(srv.url) as pool:
            resp = await pool.exchange("GET", "/reset", H, None, timeout=5)
            got = b""
            with pytest.raises(UpstreamReset) as info:
                async for chunk in resp.iter_chunks(5):
                    got += chunk
            assert got == b"a" * 100 and info.value.response_started is True
            assert pool.stats == {"open": 0, "idle": 0, "in_use": 0, "waiting": 0}

            resp = await pool.exchange("GET", "/stall", H, None, timeout=5)
            started = time.monotonic()
            with pytest.raises(UpstreamTimeout):
                await resp.read(idle_timeout=0.2)
            assert time.monotonic() - started < 1.5
            resp.release()  # idempotent after the failure
            assert pool.stats == {"open": 0, "idle": 0, "in_use": 0, "waiting": 0}
            await eventually(lambda: all(t.done() for t in srv.tasks))

    run(scenario())


@pytest.mark.parametrize(
    "garbage",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
    ],
)
def test_garbage_response_is_a_protocol_error(run: Run, garbage: bytes) -> None:
    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(garbage)
        await writer.drain()
        await reader.read()

    async def scenario() -> None:
        async with raw_server(server) as srv, pool_for(srv.url) as pool:
            with pytest.raises(UpstreamProtocolError) as info:
                await pool.exchange("GET", "/", H, None, timeout=5)
            assert info.value.kind == "protocol" and info.value.response_started is True
            assert pool.stats["open"] == 0
            assert srv.connections == 1  # GET or not: a started response is never retried

    run(scenario())


def test_cancellation_closes_the_connection(run: Run) -> None:
    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_head(reader)
        if b"/body" in head:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"a" * 10)
            await writer.drain()
        await reader.read()  # ends when the client closes

    async def read_all(pool: UpstreamPool, target: str) -> bytes:
        resp = await pool.exchange("GET", target, H, None, timeout=30)
        try:
            return await resp.read()
        finally:
            resp.release()

    async def scenario() -> None:
        async with raw_server(server) as srv, pool_for(srv.url, max_connections=1) as pool:
            for target in ("/head", "/body"):
                task = asyncio.create_task(read_all(pool, target))
                await eventually(lambda: srv.connections > 0 and pool.stats["in_use"] == 1)
                await asyncio.sleep(0.05)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                assert pool.stats == {"open": 0, "idle": 0, "in_use": 0, "waiting": 0}
                await eventually(lambda: all(t.done() for t in srv.tasks))
            # A cancelled waiter gives up its place without taking a slot.
            holder = asyncio.create_task(read_all(pool, "/head"))
            await eventually(lambda: pool.stats["in_use"] == 1)
            waiter = asyncio.create_task(read_all(pool, "/head"))
            await eventually(lambda: pool.stats["waiting"] == 1)
            waiter.cancel()
            holder.cancel()
            await asyncio.gather(holder, waiter, return_exceptions=True)
            assert pool.stats == {"open": 0, "idle": 0, "in_use": 0, "waiting": 0}

    run(scenario())


def test_closed_pool_refuses_and_closes_on_release(run: Run) -> None:
    async def scenario() -> None:
        async with app_server([web.get("/", hello)]) as srv:
            pool = UpstreamPool(srv.url)
            await get(pool)
            resp = await pool.exchange("GET", "/", H, None, timeout=5)
            await pool.close()
            assert pool.stats["idle"] == 0
            assert await resp.read() == b"hello"
            assert pool.stats["open"] == 0
            with pytest.raises(UpstreamConnectError):
                await pool.exchange("GET", "/", H, None, timeout=5)

    run(scenario())


# -- a real upstream process under concurrency -----------------------------------------------

UPSTREAM_APP = """
import sys
from aiohttp import web

async def echo(request):
    body = await request.read()
    return web.Response(body=request.path.encode() + b"|" + body)

app = web.Application()
app.router.add_route("*", "/{tail:.*}", echo)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def test_concurrent_exchanges_against_an_upstream_process(run: Run, tmp_path: Any) -> None:
    port = procs.free_port()
    with procs.running(
        [procs.PYTHON, "-c", UPSTREAM_APP, str(port)],
        log_dir=tmp_path,
        name="upstream",
        ready_url=f"http://127.0.0.1:{port}/ready",
    ):

        async def one(pool: UpstreamPool, i: int) -> None:
            body = b"%d" % i if i % 2 else None
            method = "POST" if body else "GET"
            resp = await pool.exchange(method, f"/r/{i}", H, body, timeout=10)
            assert await resp.read() == f"/r/{i}|".encode() + (body or b"")

        async def scenario() -> None:
            async with pool_for(f"http://127.0.0.1:{port}", max_connections=4) as pool:
                await asyncio.gather(*(one(pool, i) for i in range(300)))
                stats = pool.stats
                assert stats["open"] <= 4 and stats["in_use"] == 0 and stats["waiting"] == 0

        run(scenario())
