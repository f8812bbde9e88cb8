"""Breaker state shared through the real Redis (SPEC §4.3): two gateway processes, and the sync
itself in process (each test on its own key prefix)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from gateway.breaker_sync import BreakerSync
from gateway.breakers import BreakerRegistry, BreakerSettings
from tests.gateway.conftest import routes_for
from tests.support import procs

ROUTES = """
routes:
  - name: orders
    path: /api/orders
    upstream: dead
    fallback: b
    breaker: {failures: 2, reset_after: 60s}
  - name: other
    path: /api/other
    upstream: b
"""


def _state(gw, route: str, upstream: str) -> dict:
    for b in httpx.get(gw.admin + "/-/breakers", timeout=5).json()["breakers"]:
        if (b["route"], b["upstream"]) == (route, upstream):
            return b
    raise AssertionError((route, upstream))


def _eventually(check, timeout: float = 1.0) -> float:
    t0 = time.monotonic()
    while True:
        if check():
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"condition not met within {timeout:.1f}s")
        time.sleep(0.02)


def test_two_replicas_agree_through_redis(backends, start_gateway, redis_url, redis_prefix):
    env = {"REDIS_URL": redis_url, "GATEWAY_REDIS_PREFIX": redis_prefix}
    text = routes_for(backends, ROUTES)
    one = start_gateway(text, env=env, name="gw1")
    two = start_gateway(text, env=env, name="gw2")

    # A breaker opened by failures in replica one is open in replica two within a second.
    for _ in range(2):
        assert httpx.get(one.url + "/api/orders/1").status_code == 200  # served by the fallback
    assert _state(one, "orders", "dead")["state"] == "open"
    _eventually(lambda: _state(two, "orders", "dead")["state"] == "open")
    r = httpx.get(two.url + "/api/orders/1")
    assert r.headers["X-Gateway-Upstream"] == "b"
    text2 = httpx.get(two.admin + "/metrics").text
    assert 'reason="breaker_open"' in text2  # replica two never tried the dead upstream itself
    assert (
        'gateway_upstream_errors_total{kind="connect",route="orders",upstream="dead"} 0.0' in text2
    )

    # The admin kill switch holds across replicas, and so does reset.
    httpx.post(one.admin + "/-/breakers/other/open")
    _eventually(lambda: _state(two, "other", "b")["forced"] == "open")
    assert httpx.get(two.url + "/api/other").status_code == 503
    httpx.post(two.admin + "/-/breakers/other/reset")
    _eventually(lambda: _state(one, "other", "b")["forced"] is None)
    assert httpx.get(one.url + "/api/other").status_code == 200
    httpx.post(one.admin + "/-/breakers/orders/reset")
    _eventually(lambda: _state(two, "orders", "dead")["state"] == "closed")


def test_late_replica_picks_up_state(backends, start_gateway, redis_url, redis_prefix):
    env = {"REDIS_URL": redis_url, "GATEWAY_REDIS_PREFIX": redis_prefix}
    text = routes_for(backends, ROUTES)
    one = start_gateway(text, env=env, name="gw1")
    httpx.post(one.admin + "/-/breakers/other/open")
    time.sleep(0.2)
    two = start_gateway(text, env=env, name="gw2")
    _eventually(lambda: _state(two, "other", "b")["forced"] == "open", timeout=2.0)


def test_redis_down_degrades_to_local_state(backends, start_gateway):
    dead = f"redis://127.0.0.1:{procs.free_port()}/0"
    gw = start_gateway(routes_for(backends, ROUTES), env={"REDIS_URL": dead})
    for _ in range(5):
        assert httpx.get(gw.url + "/api/other").status_code == 200
        assert httpx.get(gw.url + "/api/orders/1").status_code == 200
    assert _state(gw, "orders", "dead")["state"] == "open"
    time.sleep(0.5)
    assert "unreachable" in gw.proc.log()


# -- the sync in process -------------------------------------------------------------------------------


async def _until(check: Callable[[], Awaitable[object]], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within:.1f}s")
        await asyncio.sleep(0.02)


class _Relay:
    """A TCP relay to the real Redis that the test can cut and restore (an outage)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = procs.free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def down(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for w in list(self._writers):
            w.transport.abort()
        await server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self._writers -= {writer, up_writer}


@contextlib.asynccontextmanager
async def _running(sync: BreakerSync) -> AsyncIterator[BreakerSync]:
    await sync.start()
    try:
        yield sync
    finally:
        await sync.close()


async def _stored(redis_url: str, key: str) -> dict | None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        raw = await client.get(key)
    finally:
        await client.aclose()
    return None if raw is None else orjson.loads(raw)


@pytest.mark.timeout(30)
async def test_every_breaker_changed_during_an_outage_reaches_redis(redis_url, redis_prefix):
    # Regression: the push loop dropped breaker A's pending update as soon as another breaker's
    # change was queued behind it, so A never reached Redis after the outage.
    relay = _Relay(urlsplit(redis_url).port or 6379)
    await relay.up()
    registry = BreakerRegistry()
    one = registry.get("a", "u", BreakerSettings(1, 60))
    two = registry.get("b", "u", BreakerSettings(1, 60))
    sync = BreakerSync(relay.url, registry, prefix=redis_prefix, poll_interval=0.1)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(relay.down)
        await stack.enter_async_context(_running(sync))
        await relay.down()
        one.failure()  # opens while Redis is away
        await asyncio.sleep(0.3)  # the push of A has failed and waits to try again
        two.failure()
        await relay.up()

        async def both_open() -> bool:
            a = await _stored(redis_url, sync.key("a", "u"))
            b = await _stored(redis_url, sync.key("b", "u"))
            return a is not None and b is not None and a["state"] == b["state"] == "open"

        await _until(both_open)


@pytest.mark.timeout(30)
async def test_a_change_after_adopting_a_newer_stamp_still_wins(redis_url, redis_prefix):
    # Regression: adopting another replica's record left this replica's own stamps where they
    # were (`forced_at = min(forced_at, updated)` did nothing), so a change made here afterwards
    # was published as no newer than the adopted record when this host's clock is behind the
    # other's, and the other replica ignored it: the two disagreed for good.
    here_reg, ahead_reg = BreakerRegistry(), BreakerRegistry()
    here = here_reg.get("r", "u", BreakerSettings(3, 60))
    ahead = ahead_reg.get("r", "u", BreakerSettings(3, 60))
    ahead_clock = lambda: time.time() + 5.0  # noqa: E731 - that replica's host clock is ahead
    async with (
        _running(BreakerSync(redis_url, here_reg, prefix=redis_prefix, poll_interval=0.1)),
        _running(
            BreakerSync(
                redis_url, ahead_reg, prefix=redis_prefix, poll_interval=0.1, wall=ahead_clock
            )
        ),
    ):
        ahead.force_open()

        async def here_adopted() -> bool:
            return here.forced == "open"

        await _until(here_adopted)
        here.reset()

        async def ahead_adopted() -> bool:
            return ahead.forced is None

        await _until(ahead_adopted)
        assert here.state == ahead.state == "closed"
