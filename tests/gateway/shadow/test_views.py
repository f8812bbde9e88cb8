"""gateway/shadow/views.py: `/-/shadow` JSON and the `/-/shadow/ui` dashboard (real loopback server).

The dashboard's JavaScript is exercised in a real headless Chromium when one is installed.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from gateway.shadow.stats import RouteStats
from gateway.shadow.store import store_from_url
from gateway.shadow.views import StoreSource, add_shadow_routes
from tests.support import procs


class FakeSource:
    """A StatsSource whose stats a test changes between polls; counts snapshot calls."""

    def __init__(self, stats: list[RouteStats]) -> None:
        self.stats = stats
        self.calls = 0
        self.fail = False
        # Shown from the (after_calls + 1)-th snapshot on.
        self.late: list[RouteStats] = []
        self.after_calls = 0

    async def snapshot(self, route: str | None = None) -> list[RouteStats]:
        self.calls += 1
        if self.fail:
            raise ConnectionError("store down")
        stats = self.stats + (self.late if self.calls > self.after_calls else [])
        return [s for s in stats if route is None or s.route == route]


def route_stats(name: str, **counts: int) -> RouteStats:
    s = RouteStats(name, counts=dict(counts))
    s.add_field("items[*].price_cents", counts.get("mismatch", 0))
    s.add_latency("primary", 0.004)
    s.add_latency("shadow", 0.009)
    if counts.get("mismatch"):
        s.add_example(
            {
                "method": "GET",
                "path": "/api/inventory",
                "status": {"primary": 200, "shadow": 200},
                "diffs": [
                    {"path": "items[3].price_cents", "primary": 100, "shadow": "</script><b>x"}
                ],
                "at": "2026-11-25T12:00:00.000Z",
            }
        )
    return s


async def serve(source: object) -> tuple[web.AppRunner, str]:
    app = web.Application()
    add_shadow_routes(app, lambda: source)  # type: ignore[arg-type, return-value]
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = procs.free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def admin() -> AsyncIterator[tuple[FakeSource, str]]:
    source = FakeSource(
        [route_stats("inventory-reads", match=995, mismatch=5), route_stats("orders", match=10)]
    )
    runner, url = await serve(source)
    yield source, url
    await runner.cleanup()


async def get(url: str) -> tuple[int, str, str]:
    async with (
        aiohttp.ClientSession() as s,
        s.get(url, timeout=aiohttp.ClientTimeout(total=10)) as r,
    ):
        return r.status, r.content_type, await r.text()


async def test_shadow_json(admin: tuple[FakeSource, str]) -> None:
    _, url = admin
    async with aiohttp.ClientSession() as s, s.get(f"{url}/-/shadow") as r:
        assert r.status == 200 and r.content_type == "application/json"
        report = await r.json()
    assert [x["route"] for x in report["routes"]] == ["inventory-reads", "orders"]
    assert report["routes"][0]["verdict"] == "ready"
    assert report["routes"][1]["verdict"] == "insufficient-data"


async def test_shadow_json_query_params(admin: tuple[FakeSource, str]) -> None:
    _, url = admin
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{url}/-/shadow", params={"route": "orders", "min_samples": "5"}) as r:
            (only,) = (await r.json())["routes"]
        assert only["route"] == "orders" and only["verdict"] == "ready"
        async with s.get(f"{url}/-/shadow", params={"min_match": "0.9999"}) as r:
            assert (await r.json())["routes"][0]["verdict"] == "not-ready"
        for bad in ({"min_samples": "x"}, {"min_match": "2"}):
            async with s.get(f"{url}/-/shadow", params=bad) as r:
                assert r.status == 400
                assert (await r.json())["error"] == "validation_error"


async def test_store_failure_is_503(admin: tuple[FakeSource, str]) -> None:
    source, url = admin
    source.fail = True
    status, _, body = await get(f"{url}/-/shadow")
    assert status == 503 and "shadow_store_unavailable" in body
    status, ctype, _ = await get(f"{url}/-/shadow/ui")
    assert status == 200 and ctype == "text/html"


async def test_no_mirror_configured_is_an_empty_report() -> None:
    runner, url = await serve(None)
    try:
        status, _, body = await get(f"{url}/-/shadow")
        assert status == 200 and '"routes":[]' in body
    finally:
        await runner.cleanup()


async def test_store_source(tmp_path: Path) -> None:
    store = store_from_url(f"sqlite:///{tmp_path}/s.db")
    await store.start()
    await store.apply({"a": RouteStats("a", counts={"match": 3})})
    runner, url = await serve(StoreSource(store))
    try:
        status, _, body = await get(f"{url}/-/shadow?min_samples=1")
        assert status == 200 and '"verdict":"ready"' in body
    finally:
        await runner.cleanup()
        await store.close()


async def test_dashboard_html_embeds_data_safely(admin: tuple[FakeSource, str]) -> None:
    _, url = admin
    status, ctype, html = await get(f"{url}/-/shadow/ui?route=inventory-reads")
    assert status == 200 and ctype == "text/html"
    assert '"/-/shadow?route=inventory-reads"' in html  # polls the JSON with the same filter
    assert "setInterval(poll, interval)" in html and "const interval = 2000" in html
    # The example value "</script>..." can't close the data block early.
    assert "</script><b>" not in html
    assert html.count("</script>") == 2


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


async def _dump_dom(url: str, profile: Path, budget_ms: int) -> str:
    chromium = _chromium()
    assert chromium is not None
    proc = await asyncio.create_subprocess_exec(
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        f"--virtual-time-budget={budget_ms}",
        "--dump-dom",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "HOME": str(profile)},
    )
    try:
        async with asyncio.timeout(90):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode()


@pytest.mark.skipif(
    _chromium() is None, reason="chromium not installed (apt-get install -y chromium)"
)
@pytest.mark.timeout(120)
async def test_dashboard_renders_and_polls_in_a_real_browser(
    admin: tuple[FakeSource, str], tmp_path: Path
) -> None:
    source, url = admin
    served_before = source.calls
    # A route that appears only after the page was served: it shows only if the JS polled.
    source.late.append(route_stats("late-route", match=1, mismatch=1))
    source.after_calls = served_before + 1
    dom = await _dump_dom(f"{url}/-/shadow/ui", tmp_path / "profile", budget_ms=5000)
    assert source.calls >= served_before + 2  # the page itself, then at least one poll
    rows = re.findall(r'<tr class="route" data-route="([^"]+)" data-verdict="([^"]+)"', dom)
    assert dict(rows) == {
        "inventory-reads": "ready",
        "orders": "insufficient-data",
        "late-route": "insufficient-data",
    }
    assert re.search(r'data-polled="\d+"', dom)
    assert "99.50%" in dom  # inventory-reads' match rate, rendered by the script
    assert "items[*].price_cents" in dom
    assert "items[3].price_cents" in dom  # the example table
    assert "<b>x" not in dom  # example values are text, never markup
