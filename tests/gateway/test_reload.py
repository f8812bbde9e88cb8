"""Hot reload (SPEC §4.5) against a real gateway process."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import httpx

from gateway.reload import PoolRetirement
from tests.gateway.conftest import routes_for


def _route_of(gw, path: str) -> str:
    return httpx.get(gw.url + path, timeout=5).headers["X-Gateway-Route"]


def _wait_route(gw, path: str, want: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = _route_of(gw, path)
        if got == want:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} still routed to {got!r}, wanted {want!r}")


def _table(name: str, upstream: str = "b") -> str:
    return f"""
routes:
  - name: {name}
    path: /api/x
    upstream: {upstream}
"""


def test_in_place_write_reloads(backends, start_gateway):
    gw = start_gateway(routes_for(backends, _table("one")))
    assert _route_of(gw, "/api/x") == "one"
    gw.routes.write_text(routes_for(backends, _table("two")))
    _wait_route(gw, "/api/x", "two")
    reloads = httpx.get(gw.admin + "/metrics").text
    assert 'gateway_config_reloads_total{result="success"}' in reloads


def test_atomic_rename_reloads(backends, start_gateway):
    gw = start_gateway(routes_for(backends, _table("one")))
    tmp = gw.routes.with_suffix(".tmp")
    tmp.write_text(routes_for(backends, _table("renamed")))
    os.replace(tmp, gw.routes)
    _wait_route(gw, "/api/x", "renamed")


def test_symlink_swap_like_a_configmap(backends, start_gateway, tmp_path):
    # Kubernetes: routes.yaml -> ..data/routes.yaml, ..data -> ..v1; an update swaps ..data atomically.
    cm = tmp_path / "configmap"
    for version, name in (("..v1", "v-one"), ("..v2", "v-two")):
        (cm / version).mkdir(parents=True)
        (cm / version / "routes.yaml").write_text(routes_for(backends, _table(name)))
    (cm / "..data").symlink_to("..v1")
    (cm / "routes.yaml").symlink_to("..data/routes.yaml")
    gw = start_gateway(None, routes_path=cm / "routes.yaml")
    assert _route_of(gw, "/api/x") == "v-one"
    (cm / "..data_tmp").symlink_to("..v2")
    os.replace(cm / "..data_tmp", cm / "..data")
    _wait_route(gw, "/api/x", "v-two")


def test_invalid_file_keeps_old_table_and_is_reported(backends, start_gateway):
    gw = start_gateway(routes_for(backends, _table("good")))
    gw.routes.write_text(routes_for(backends, _table("bad", upstream="nope")))
    deadline = time.monotonic() + 5
    err = None
    while time.monotonic() < deadline:
        err = httpx.get(gw.admin + "/-/routes").json()["last_error"]
        if err:
            break
        time.sleep(0.05)
    assert err and "nope" in err["message"] and err["at"]
    assert _route_of(gw, "/api/x") == "good"
    assert 'gateway_config_reloads_total{result="failure"}' in httpx.get(gw.admin + "/metrics").text
    # Syntax error, empty file, deleted file: still the old table.
    for text in ("version: 1\nroutes: [\n", ""):
        gw.routes.write_text(text)
        time.sleep(0.4)
        assert _route_of(gw, "/api/x") == "good"
    gw.routes.unlink()
    time.sleep(0.4)
    assert _route_of(gw, "/api/x") == "good"
    gw.routes.write_text(routes_for(backends, _table("fixed")))
    _wait_route(gw, "/api/x", "fixed")
    assert httpx.get(gw.admin + "/-/routes").json()["last_error"] is None


def test_sighup_and_admin_reload(backends, start_gateway):
    gw = start_gateway(routes_for(backends, _table("one")), env={"GATEWAY_WATCH_INTERVAL": "3600"})
    gw.routes.write_text(routes_for(backends, _table("hup")))
    time.sleep(0.2)
    assert _route_of(gw, "/api/x") == "one"  # the watcher is effectively off here
    os.kill(gw.proc.pid, signal.SIGHUP)
    _wait_route(gw, "/api/x", "hup")
    gw.routes.write_text(routes_for(backends, _table("posted")))
    r = httpx.post(gw.admin + "/-/reload")
    assert r.status_code == 200 and r.json()["result"] == "success"
    assert _route_of(gw, "/api/x") == "posted"
    assert httpx.post(gw.admin + "/-/reload").json()["result"] == "unchanged"
    gw.routes.write_text("version: 2\n")
    r = httpx.post(gw.admin + "/-/reload")
    assert r.status_code == 400 and r.json()["error"] == "invalid_config"
    assert _route_of(gw, "/api/x") == "posted"


def test_reload_under_load_drops_nothing(backends, start_gateway):
    gw = start_gateway(routes_for(backends, _table("r0")))
    stop = threading.Event()
    failures: list[str] = []
    counts = [0]

    def load() -> None:
        with httpx.Client(base_url=gw.url, timeout=10) as c:
            while not stop.is_set():
                try:
                    r = c.get("/api/x/1")
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text[:200]}")
                    counts[0] += 1
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for i in range(1, 16):
            gw.routes.write_text(routes_for(backends, _table(f"r{i}", upstream="bc"[i % 2])))
            time.sleep(0.15)
            if i % 5 == 0:
                httpx.post(gw.admin + "/-/reload")
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert not failures, failures[:5]
    assert counts[0] > 100


def test_breaker_state_survives_reload_for_unchanged_names(backends, start_gateway):
    two_routes = """
routes:
  - name: keep
    path: /api/x
    upstream: b
  - name: gone
    path: /api/y
    upstream: c
"""
    gw = start_gateway(routes_for(backends, two_routes))
    httpx.post(gw.admin + "/-/breakers/keep/open")
    httpx.post(gw.admin + "/-/breakers/gone/open")
    gw.routes.write_text(
        routes_for(
            backends, two_routes.replace("name: gone", "name: renamed") + "    timeout: 2s\n"
        )
    )
    _wait_route(gw, "/api/y", "renamed")
    state = {
        (b["route"], b["upstream"]): b
        for b in httpx.get(gw.admin + "/-/breakers").json()["breakers"]
    }
    assert state[("keep", "b")]["forced"] == "open"
    assert state[("renamed", "c")]["forced"] is None
    assert ("gone", "c") not in state
    assert httpx.get(gw.url + "/api/x").status_code == 503


# -- retired upstream pools: each gets its full grace ------------------------------------------


class FakeClock:
    """An injected `sleep` whose time moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    async def sleep(self, seconds: float) -> None:
        future = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + seconds, future))
        await future

    async def advance(self, seconds: float) -> None:
        for _ in range(5):  # let tasks created since the last step reach their sleep
            await asyncio.sleep(0)
        self.now += seconds
        for due, future in self._sleepers:
            if due <= self.now and not future.done():
                future.set_result(None)
        for _ in range(5):  # let the woken tasks run to their end
            await asyncio.sleep(0)


class FakePool:
    def __init__(self, name: str, closed: list[tuple[str, float]], clock: FakeClock) -> None:
        self.name = name
        self._closed = closed
        self._clock = clock

    async def close(self) -> None:
        self._closed.append((self.name, self._clock.now))


async def test_each_retired_pool_gets_its_own_full_grace() -> None:
    clock = FakeClock()
    closed: list[tuple[str, float]] = []
    retirement = PoolRetirement(30.0, sleep=clock.sleep)
    retirement.retire([FakePool("first", closed, clock)])
    await clock.advance(20)
    retirement.retire([FakePool("second", closed, clock), FakePool("third", closed, clock)])
    await clock.advance(10)
    assert closed == [("first", 30.0)]  # the later pools are not closed with the first
    assert retirement.pending == 2
    await clock.advance(19)
    assert closed == [("first", 30.0)]
    await clock.advance(1)
    assert closed == [("first", 30.0), ("second", 50.0), ("third", 50.0)]
    assert retirement.pending == 0


async def test_shutdown_closes_pools_still_in_their_grace() -> None:
    clock = FakeClock()
    closed: list[tuple[str, float]] = []
    retirement = PoolRetirement(30.0, sleep=clock.sleep)
    retirement.retire([FakePool("a", closed, clock)])
    retirement.retire([])
    await clock.advance(5)
    await retirement.close()
    assert closed == [("a", 5.0)] and retirement.pending == 0


async def test_reloads_retire_the_pools_they_replaced_each_with_the_grace_period(
    tmp_path, monkeypatch
) -> None:
    from gateway.app import build_gateway
    from gateway.settings import Settings
    from gateway.upstream import UpstreamPool

    def routes(port: int) -> str:
        return (
            "version: 1\n"
            f'upstreams:\n  a: {{url: "http://127.0.0.1:{port}"}}\n'
            "defaults:\n  upstream: a\n"
        )

    path = tmp_path / "routes.yaml"
    path.write_text(routes(1001))
    gw = build_gateway(Settings(routes=path, grace_period=30.0))
    assert gw.reloader.retirement.grace == 30.0  # --grace-period reaches the reloader
    clock = FakeClock()
    gw.reloader.retirement = PoolRetirement(30.0, sleep=clock.sleep)
    closed: list[tuple[str, float]] = []

    async def close(pool: UpstreamPool) -> None:
        closed.append((pool.url, clock.now))

    monkeypatch.setattr(UpstreamPool, "close", close)
    path.write_text(routes(1002))
    assert (await gw.reloader.reload("test")).changed
    await clock.advance(25)
    path.write_text(routes(1003))
    assert (await gw.reloader.reload("test")).changed
    await clock.advance(5)
    assert closed == [("http://127.0.0.1:1001", 30.0)]
    await clock.advance(24)
    assert closed == [("http://127.0.0.1:1001", 30.0)]
    await clock.advance(1)
    assert closed == [("http://127.0.0.1:1001", 30.0), ("http://127.0.0.1:1002", 55.0)]
    await gw.reloader.close()
    await gw.pools.close()
