"""The request pipeline in process: gateway.proxy's handler on a loopback aiohttp server, in
front of in-process upstreams, with the runtime built by gateway.runtime (no subprocesses).

What the process tests (test_proxy.py, test_fallback.py) cannot see is checked here: the
Context each stage fills in, the access-log record, the fallback counters and breaker reports.
"""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gateway import metrics
from gateway.breakers import BreakerRegistry
from gateway.config import load_config
from gateway.pipeline.context import Context
from gateway.proxy import Proxy, SnapshotRef
from gateway.runtime import PoolSet, build_snapshot
from tests.support import procs

pytestmark = pytest.mark.timeout(60)


class Log:
    """An AccessLog stand-in that keeps the records."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def log(self, record: dict[str, Any]) -> None:
        self.records.append(record)


async def _upstream(name: str) -> tuple[web.AppRunner, int]:
    hits = {"n": 0}

    async def handle(request: web.Request) -> web.StreamResponse:
        hits["n"] += 1
        path = request.path
        if path.startswith("/status/") and name == "a":  # b, the fallback, answers 200
            return web.Response(status=int(path.rsplit("/", 1)[1]), text=name)
        if path == "/slow":
            await asyncio.sleep(2)
        if path == "/big":
            return web.Response(body=b"x" * 200_000, content_type="application/octet-stream")
        body = await request.read()
        return web.json_response(
            {"upstream": name, "path": request.path_qs, "method": request.method, "body": len(body)}
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port


ROUTES = """
version: 1
upstreams:
  a: {{url: "http://127.0.0.1:{a}"}}
  b: {{url: "http://127.0.0.1:{b}"}}
  dead: {{url: "http://127.0.0.1:{dead}", connect_timeout: 500ms}}
defaults:
  upstream: a
  timeout: 5s
  breaker: {{failures: 3, reset_after: 30s}}
routes:
  - name: dead-fb
    path: /dead-fb
    upstream: dead
    fallback: b
  - name: dead-retry
    path: /dead-retry
    upstream: dead
    retries: {{attempts: 2}}
  - name: fb-status
    path: /status
    upstream: a
    fallback: b
  - name: slow
    path: /slow
    upstream: a
    timeout: 200ms
  - name: split
    path: /split
    split: {{a: 1, b: 1}}
    sticky: X-Customer-Id
"""


class Gateway:
    def __init__(self, url: str, log: Log, proxy: Proxy) -> None:
        self.url = url
        self.log = log
        self.proxy = proxy

    async def send(self, raw: bytes) -> bytes:
        """One raw request; the raw answer (the connection is closed by the request)."""
        reader, writer = await asyncio.open_connection(*self.url.split(":"))
        writer.write(raw)
        data = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        return data

    async def get(
        self, path: str, method: str = "GET", headers: str = "", body: bytes = b""
    ) -> Any:
        length = f"Content-Length: {len(body)}\r\n" if body else ""
        raw = f"{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{headers}{length}\r\n"
        out = await self.send(raw.encode() + body)
        head, _, payload = out.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        hdrs = dict(line.split(": ", 1) for line in lines[1:])
        return status, hdrs, payload


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    (ra, pa), (rb, pb) = await _upstream("a"), await _upstream("b")
    routes = tmp_path / "routes.yaml"
    routes.write_text(textwrap.dedent(ROUTES.format(a=pa, b=pb, dead=procs.free_port())))
    pools = PoolSet()
    snap = build_snapshot(load_config(routes), pools, BreakerRegistry())
    log = Log()
    proxy = Proxy(SnapshotRef(snap), access_log=log)  # type: ignore[arg-type]
    server = await asyncio.get_running_loop().create_server(
        web.Server(proxy, access_log=None), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    try:
        yield Gateway(f"127.0.0.1:{port}", log, proxy)
    finally:
        server.close()
        await server.wait_closed()
        await pools.close()
        await ra.cleanup()
        await rb.cleanup()


def _sample(name: str, **labels: str) -> float:
    value = metrics.REGISTRY.get_sample_value(name, labels)
    return value or 0.0


async def test_every_stage_leaves_its_part_in_the_access_log(gateway: Gateway) -> None:
    status, headers, body = await gateway.get("/api/../x/./y?q=1", headers="X-Request-ID: r-1\r\n")
    assert status == 200
    assert headers["X-Gateway-Route"] == "default" and headers["X-Gateway-Upstream"] == "a"
    assert headers["X-Request-ID"] == "r-1"
    assert b'"path":"/x/y?q=1"' in body.replace(b" ", b"")  # normalised, query kept
    (record,) = gateway.log.records
    assert record["request_id"] == "r-1"
    assert record["path"] == "/api/../x/./y"  # as the client sent it
    assert record["route"] == "default" and record["upstream"] == "a"
    assert record["status"] == 200 and record["bytes"] == len(body)
    assert record["fallback"] is None and record["shadow"] is None


async def test_bad_path_is_400_before_routing(gateway: Gateway) -> None:
    status, headers, body = await gateway.get("/../../etc")
    assert status == 400 and b'"route":null' in body
    assert "X-Gateway-Route" not in headers
    assert gateway.log.records[0]["route"] is None


async def test_connect_error_falls_back_and_is_counted(gateway: Gateway) -> None:
    counted = {"route": "dead-fb", "from_upstream": "dead", "to_upstream": "b", "reason": "connect"}
    before = _sample("gateway_fallbacks_total", **counted)
    status, headers, _ = await gateway.get("/dead-fb", method="POST", body=b"{}")
    assert status == 200 and headers["X-Gateway-Upstream"] == "b"
    assert gateway.log.records[0]["fallback"] == "dead:connect"
    assert _sample("gateway_fallbacks_total", **counted) == before + 1


async def test_retries_then_502_then_breaker_open_503(gateway: Gateway) -> None:
    errors = {"route": "dead-retry", "upstream": "dead", "kind": "connect"}
    before = _sample("gateway_upstream_errors_total", **errors)
    status, headers, body = await gateway.get("/dead-retry")
    assert status == 502 and headers["X-Gateway-Upstream"] == "dead"
    assert _sample("gateway_upstream_errors_total", **errors) == before + 3  # 1 + 2 retries
    # Three failures open the breaker (failures: 3): the next request fails fast.
    status, headers, body = await gateway.get("/dead-retry")
    assert status == 503 and b'"error":"breaker_open"' in body
    assert int(headers["Retry-After"]) >= 1
    assert _sample("gateway_upstream_errors_total", **errors) == before + 3  # no upstream call


async def test_5xx_falls_back_for_get_but_not_for_post(gateway: Gateway) -> None:
    status, headers, _ = await gateway.get("/status/503")
    assert status == 200 and headers["X-Gateway-Upstream"] == "b"
    assert gateway.log.records[-1]["fallback"] == "a:status"
    status, headers, body = await gateway.get("/status/503", method="POST", body=b"x")
    assert status == 503 and headers["X-Gateway-Upstream"] == "a" and body == b"a"  # unchanged


async def test_timeout_is_504(gateway: Gateway) -> None:
    status, _, body = await gateway.get("/slow")
    assert status == 504 and b'"error":"gateway_timeout"' in body
    assert gateway.log.records[-1]["upstream"] == "a"


async def test_large_answer_is_streamed_whole(gateway: Gateway) -> None:
    status, headers, body = await gateway.get("/big")
    assert status == 200 and headers["Content-Length"] == "200000" and len(body) == 200_000
    assert gateway.log.records[-1]["bytes"] == 200_000


async def test_sticky_split_keeps_a_customer_on_one_side(gateway: Gateway) -> None:
    sides = set()
    for _ in range(6):
        _, headers, _ = await gateway.get("/split", headers="X-Customer-Id: c-7\r\n")
        sides.add(headers["X-Gateway-Upstream"])
    assert len(sides) == 1


async def test_header_bytes_pass_through_unchanged_both_ways(gateway: Gateway) -> None:
    # An upstream that echoes the request's X-Name bytes back in a response header.
    seen: list[bytes] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        name = next(line for line in head.split(b"\r\n") if line.lower().startswith(b"x-name:"))
        seen.append(name)
        value = name.split(b":", 1)[1].strip()
        writer.write(
            b"HTTP/1.1 200 Fine\xe9\r\nX-Echo: " + value + b"\r\nContent-Length: 2\r\n\r\nok"
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        snap = gateway.proxy.ref.current
        pool = snap.runtimes["default"].targets[0].pool
        pool.port = port  # point the default upstream at the echo server
        out = await gateway.send(
            b"GET /e HTTP/1.1\r\nHost: t\r\nX-Name: caf\xe9\r\nConnection: close\r\n\r\n"
        )
    finally:
        server.close()
    assert seen == [b"X-Name: caf\xe9"]
    assert out.startswith(b"HTTP/1.1 200 Fine\xe9\r\n")
    assert b"\r\nX-Echo: caf\xe9\r\n" in out


def test_context_carries_no_per_request_dict() -> None:
    assert not hasattr(Context, "__dict__") or "__slots__" in Context.__dict__
    assert "__weakref__" not in Context.__slots__
