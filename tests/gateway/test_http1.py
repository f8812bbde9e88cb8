"""gateway/http1.py against aiohttp's own writer: the same answer, framed by each, on real
loopback servers, read back as raw bytes over a socket (Date normalised).

The reference is what the gateway used to send: web.Response (small bodies) or
web.StreamResponse (streamed ones) with the upstream's headers decoded as text. The one intended
difference is the header-bytes policy (docs/architecture.md): header bytes that are not UTF-8
pass through unchanged, where aiohttp re-encodes them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from gateway import http1
from gateway.pipeline.headers import RESPONSE_DROP, RESPONSE_DROP_BYTES
from gateway.upstream.response import decode_value

pytestmark = pytest.mark.timeout(60)

OWN = http1.header_lines((("X-Gateway-Route", "orders"), ("X-Gateway-Upstream", "legacy")))
RID = "4f0c2a"


@dataclass
class Answer:
    """An upstream's answer as the gateway received it."""

    status: int = 200
    reason: str = "OK"
    headers: list[tuple[bytes, bytes]] = field(
        default_factory=lambda: [(b"Content-Type", b"application/json")]
    )
    body: bytes = b'{"ok": true}'
    length: int | None = -1  # -1: len(body); None: no Content-Length (streamed, chunked)
    streamed: bool = False

    def declared(self) -> int | None:
        return len(self.body) if self.length == -1 else self.length


def has_body(method: str, status: int) -> bool:
    return not (method == "HEAD" or status in (204, 304) or status < 200)


async def ours(request: web.BaseRequest, a: Answer) -> web.StreamResponse:
    extra = b"X-Request-ID: %s\r\n%s" % (RID.encode(), OWN)
    length = a.declared()
    if a.streamed:
        out = http1.Streamed(a.status, a.reason, a.headers, RESPONSE_DROP_BYTES, extra, length)
        await out.prepare(request)
        for i in range(0, len(a.body), 5):
            await out.write(a.body[i : i + 5])
        await out.write_eof()
        return out
    body = a.body if has_body(request.method, a.status) else b""
    resp, sent = http1.buffered(
        request,
        a.status,
        a.reason,
        a.headers,
        RESPONSE_DROP_BYTES,
        extra,
        has_body(request.method, a.status),
        length,
        body,
    )
    assert sent == len(body)
    return resp


async def theirs(request: web.BaseRequest, a: Answer) -> web.StreamResponse:
    """What the proxy sent before gateway.http1 existed."""
    headers = [
        (k.decode("latin-1"), decode_value(v))
        for k, v in a.headers
        if k.decode("latin-1").lower() not in RESPONSE_DROP
    ]
    headers += [
        ("X-Request-ID", RID),
        ("X-Gateway-Route", "orders"),
        ("X-Gateway-Upstream", "legacy"),
    ]
    length = a.declared()
    if a.streamed:
        stream = web.StreamResponse(status=a.status, reason=a.reason, headers=headers)
        if length is not None:
            stream.content_length = length
        await stream.prepare(request)
        for i in range(0, len(a.body), 5):
            await stream.write(a.body[i : i + 5])
        await stream.write_eof()
        return stream
    body = a.body if has_body(request.method, a.status) else b""
    if length is not None:
        headers.append(("Content-Length", str(length)))
    return web.Response(status=a.status, reason=a.reason, body=body, headers=headers)


Server = Callable[[bytes], "asyncio.Future[tuple[bytes, bool]]"]


@pytest.fixture
async def servers() -> AsyncIterator[Callable[[Answer, bytes], asyncio.Future]]:
    """Two loopback servers answering the same Answer, one with each writer."""
    current: list[Answer] = []
    loop = asyncio.get_running_loop()
    listening = []
    ports = []
    for build in (ours, theirs):

        async def handler(request: web.BaseRequest, build=build) -> web.StreamResponse:
            return await build(request, current[0])

        server = web.Server(handler, access_log=None)
        listening.append(await loop.create_server(server, "127.0.0.1", 0))
        ports.append(listening[-1].sockets[0].getsockname()[1])

    async def both(answer: Answer, request: bytes) -> tuple[tuple[bytes, bool], ...]:
        current[:] = [answer]
        return tuple([await exchange(port, request) for port in ports])

    yield both  # type: ignore[misc]
    for s in listening:
        s.close()
        await s.wait_closed()


async def exchange(port: int, request: bytes) -> tuple[bytes, bool]:
    """Send one raw request; the raw response (Date normalised), and whether the server then
    closed the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.lower()
        status = int(head.split(b" ", 2)[1])
        body = b""
        length = re.search(rb"\r\ncontent-length: *(\d+)", lines)
        if request.startswith(b"HEAD") or status in (204, 304):
            pass
        elif length:
            body = await reader.readexactly(int(length.group(1)))
        elif b"\r\ntransfer-encoding: chunked" in lines:
            body = await reader.readuntil(b"\r\n0\r\n\r\n")
        else:  # delimited by the connection's end
            while chunk := await _read(reader, 1.0):
                body += chunk
        closed = await _read(reader, 0.3) == b""
        raw = re.sub(rb"\r\nDate: [^\r]*", b"\r\nDate: <date>", head + body)
        return raw, closed
    finally:
        writer.close()


async def _read(reader: asyncio.StreamReader, within: float) -> bytes | None:
    """The next bytes; b"" at the connection's end, None if nothing came `within` seconds."""
    try:
        return await asyncio.wait_for(reader.read(65536), within)
    except TimeoutError:
        return None


def get(method: str = "GET", version: str = "1.1", connection: str | None = None) -> bytes:
    extra = f"Connection: {connection}\r\n" if connection else ""
    return f"{method} /x HTTP/{version}\r\nHost: test\r\n{extra}\r\n".encode()


CASES = [
    ("small JSON", Answer(), get()),
    ("HEAD keeps the declared length", Answer(length=12), get("HEAD")),
    ("HEAD without a length", Answer(length=None), get("HEAD")),
    ("204 drops a Content-Length", Answer(204, "No Content", body=b"", length=0), get()),
    ("304 drops the length", Answer(304, "Not Modified", body=b"", length=5120), get()),
    ("HTTP/1.0, no keep-alive", Answer(), get(version="1.0")),
    ("HTTP/1.0 keep-alive", Answer(), get(version="1.0", connection="keep-alive")),
    ("HTTP/1.1 keep-alive", Answer(), get(connection="keep-alive")),
    ("HTTP/1.1 Connection: close", Answer(), get(connection="close")),
    ("missing Content-Type gets the default", Answer(headers=[]), get()),
    ("empty body, no Content-Type: no default", Answer(headers=[], body=b""), get()),
    (
        "upstream Date and Server are kept, not doubled",
        Answer(headers=[(b"Date", b"Tue, 01 Jan 2030 00:00:00 GMT"), (b"Server", b"legacy/1")]),
        get(),
    ),
    (
        "hop-by-hop and framing headers dropped, order and case kept",
        Answer(
            headers=[
                (b"x-b", b"2"),
                (b"Connection", b"keep-alive"),
                (b"Content-Length", b"99"),
                (b"X-A", b"1"),
                (b"x-b", b"3"),
                (b"X-Request-ID", b"spoofed"),
                (b"Keep-Alive", b"timeout=5"),
            ]
        ),
        get(),
    ),
    ("UTF-8 header value", Answer(headers=[(b"X-Name", "café".encode())]), get()),
    ("custom reason phrase", Answer(418, "Short And Stout"), get()),
    ("streamed, chunked", Answer(body=b"x" * 23, length=None, streamed=True), get()),
    ("streamed, known length", Answer(body=b"y" * 23, streamed=True), get()),
    ("streamed, no Content-Type", Answer(headers=[], body=b"z" * 9, streamed=True), get()),
    (
        "streamed, Connection: close",
        Answer(body=b"v" * 12, streamed=True),
        get(connection="close"),
    ),
]


@pytest.mark.parametrize(
    ("answer", "request_bytes"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_same_bytes_as_aiohttp(servers, answer: Answer, request_bytes: bytes) -> None:
    (mine, mine_closed), (ref, ref_closed) = await servers(answer, request_bytes)
    assert mine == ref
    assert mine_closed == ref_closed


async def test_http10_stream_without_length_ends_with_the_connection(servers) -> None:
    # RFC 9112 §6.3: such a body is delimited by closing the connection. aiohttp 3.14 writes the
    # same bytes but keeps the connection open (StreamResponse drops its own keep_alive=False),
    # so the client never learns where the body ends: the gateway closes it.
    answer = Answer(body=b"w" * 12, length=None, streamed=True)
    (mine, mine_closed), (ref, ref_closed) = await servers(
        answer, get(version="1.0", connection="keep-alive")
    )
    assert mine == ref and mine.endswith(b"\r\n\r\n" + b"w" * 12)
    assert b"Connection:" not in mine and b"Transfer-Encoding" not in mine
    assert mine_closed and not ref_closed


@pytest.mark.parametrize("streamed", [False, True], ids=["buffered", "streamed"])
async def test_non_utf8_header_bytes_pass_through_unchanged(servers, streamed: bool) -> None:
    # The one intended difference: aiohttp re-encodes obs-text (latin-1 text -> UTF-8).
    answer = Answer(
        headers=[(b"Content-Type", b"text/plain"), (b"X-Latin1", b"caf\xe9")],
        reason="Ok\xe9",  # a reason phrase's bytes, decoded latin-1 by gateway.upstream
        body=b"hello",
        streamed=streamed,
    )
    (mine, _), (ref, _) = await servers(answer, get())
    assert b"\r\nX-Latin1: caf\xe9\r\n" in mine
    assert b"HTTP/1.1 200 Ok\xe9\r\n" in mine
    assert mine == ref.replace(b"caf\xc3\xa9", b"caf\xe9").replace(b"Ok\xc3\xa9", b"Ok\xe9")


async def test_bad_reason_fails_where_aiohttp_fails(servers) -> None:
    # Unreachable from a real upstream (llhttp rejects it), but never written to the client.
    (mine, _), (ref, _) = await servers(Answer(reason="a\r\nX-Injected: 1"), get())
    assert mine.startswith(b"HTTP/1.1 500 ") and ref.startswith(b"HTTP/1.1 500 ")
    assert b"X-Injected" not in mine


def test_gateway_header_lines_refuse_newlines() -> None:
    with pytest.raises(ValueError):
        http1.header_lines((("X-Gateway-Route", "a\r\nX-Evil: 1"),))
    assert http1.header_lines((("A", "1"), ("B", "é"))) == "A: 1\r\nB: é\r\n".encode()


def test_status_lines_are_cached_and_bounded() -> None:
    first = http1.status_line((1, 1), 200, "OK")
    assert first == b"HTTP/1.1 200 OK\r\n"
    assert http1.status_line((1, 1), 200, "OK") is first
    for i in range(1100):
        http1.status_line((1, 1), 200, f"reason {i}")
    assert len(http1._status_lines) <= 1024
