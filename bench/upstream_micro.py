"""Micro-benchmark: GETs through UpstreamPool vs aiohttp.ClientSession against a local aiohttp server.

    .venv/bin/python bench/upstream_micro.py [--requests 20000] [--concurrency 32] [--loop uvloop]

The upstream runs in its own process (uvloop) so the client's CPU is measured on its own:
besides requests/s, it prints the client's CPU time per request, which is what a proxy pays.
Not a test: numbers vary with the machine and what else runs on it.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp

from gateway.upstream import UpstreamPool

SERVER = """
import sys, uvloop
from aiohttp import web

BODY = b'{"id": 42, "name": "widget", "price": "9.99", "tags": ["a", "b", "c"]}'

async def small(request):
    return web.Response(body=BODY, content_type="application/json")

app = web.Application()
app.router.add_get("/item", small)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None,
            loop=uvloop.new_event_loop())
"""

Fetch = Callable[[], Awaitable[int]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"upstream on port {port} not ready")


async def measure(fetch: Fetch, requests: int, concurrency: int) -> tuple[float, float]:
    """(requests/s, client CPU microseconds per request) for `requests` GETs at `concurrency`."""
    per_worker = requests // concurrency

    async def worker() -> None:
        for _ in range(per_worker):
            assert await fetch() == 200

    for _ in range(200):  # warm-up: connections, caches
        await fetch()
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    done = per_worker * concurrency
    return done / wall, cpu / done * 1e6


async def run(url: str, requests: int, concurrency: int) -> None:
    pool = UpstreamPool(url, max_connections=concurrency)
    headers = [("Host", "127.0.0.1"), ("Accept", "application/json")]

    async def via_pool() -> int:
        resp = await pool.exchange("GET", "/item", headers, None, timeout=5)
        await resp.read()
        return resp.status

    connector = aiohttp.TCPConnector(limit=concurrency)
    session = aiohttp.ClientSession(connector=connector)

    async def via_session() -> int:
        async with session.get(url + "/item", headers={"Accept": "application/json"}) as resp:
            await resp.read()
            return resp.status

    try:
        for mode, conc in (("sequential", 1), (f"concurrent x{concurrency}", concurrency)):
            n = requests if conc > 1 else requests // 4
            results = {}
            for name, fetch in (("UpstreamPool", via_pool), ("ClientSession", via_session)):
                results[name] = await measure(fetch, n, conc)
                rps, cpu_us = results[name]
                print(f"{mode:>16}  {name:<13} {rps:9.0f} req/s  {cpu_us:6.1f} us CPU/request")
            ratio = results["UpstreamPool"][0] / results["ClientSession"][0]
            cpu_ratio = results["ClientSession"][1] / results["UpstreamPool"][1]
            print(f"{mode:>16}  pool/session: {ratio:.2f}x req/s, {cpu_ratio:.2f}x less client CPU")
    finally:
        await pool.close()
        await session.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = parser.parse_args()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], start_new_session=True)
    try:
        wait_port(port)
        coro = run(f"http://127.0.0.1:{port}", args.requests, args.concurrency)
        if args.loop == "uvloop":
            import uvloop

            uvloop.run(coro)
        else:
            asyncio.run(coro)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


if __name__ == "__main__":
    main()
