"""gateway/shadow/mirror.py against real aiohttp servers on loopback through real UpstreamPools."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from gateway import metrics
from gateway.config import Shadow
from gateway.shadow.mirror import ShadowJob, ShadowMirror, open_mirror, should_mirror
from gateway.shadow.sql_store import SqlShadowStore
from gateway.upstream import UpstreamPool
from tests.support import procs

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Server:
    """A loopback aiohttp server whose answer the test sets; records what it received."""

    answer: Handler
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""
    runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            {
                "method": request.method,
                "path_qs": request.path_qs,
                "headers": dict(request.headers),
                "body": await request.read(),
            }
        )
        return await self.answer(request)


def json_answer(doc: Any, status: int = 200) -> Handler:
    async def answer(request: web.Request) -> web.Response:
        return web.json_response(doc, status=status)

    return answer


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[Server]]]:
    servers: list[Server] = []

    async def start(answer: Handler) -> Server:
        server = Server(answer)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", server.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = procs.free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        server.url, server.runner = f"http://127.0.0.1:{port}", runner
        servers.append(server)
        return server

    yield start
    for s in servers:
        assert s.runner is not None
        await s.runner.cleanup()


@pytest.fixture
async def pools() -> AsyncIterator[Callable[[str], UpstreamPool]]:
    made: list[UpstreamPool] = []

    def make(url: str) -> UpstreamPool:
        pool = UpstreamPool(url, connect_timeout=1.0)
        made.append(pool)
        return pool

    yield make
    for p in made:
        await p.close()


@pytest.fixture
def route() -> str:
    return f"r-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlShadowStore]:
    s = SqlShadowStore(f"sqlite:///{tmp_path}/shadow.db")
    await s.start()
    yield s
    await s.close()


def shadow_cfg(**kw: Any) -> Shadow:
    return Shadow.model_validate({"upstream": "new", **kw})


def job(
    route: str,
    shadow_pool: Any,
    *,
    primary_doc: Any = None,
    primary_body: bytes | None = None,
    primary_pool: Any = None,
    cfg: Shadow | None = None,
    method: str = "GET",
    target: str = "/api/inventory?limit=5",
    headers: list[tuple[str, str]] | None = None,
    body: bytes | None = None,
    status: int = 200,
    timeout: float = 2.0,
) -> ShadowJob:
    if primary_body is None and primary_doc is not None:
        primary_body = orjson.dumps(primary_doc)
    return ShadowJob(
        route=route,
        shadow=cfg or shadow_cfg(),
        method=method,
        target=target,
        headers=headers or [("Host", "shop.example"), ("X-Request-ID", "rid-1")],
        body=body,
        primary_status=status,
        primary_headers=[("Content-Type", "application/json")],
        primary_body=primary_body,
        primary_latency=0.003,
        shadow_pool=shadow_pool,
        primary_pool=primary_pool,
        timeout=timeout,
    )


def counter(route: str, outcome: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "gateway_shadow_total", {"route": route, "outcome": outcome}
    )
    return value or 0.0


async def run_jobs(mirror: ShadowMirror, *jobs: ShadowJob) -> None:
    for j in jobs:
        assert mirror.submit(j)
    async with asyncio.timeout(10):
        await mirror._queue.join()


INVENTORY = {
    "items": [{"sku": f"SKU-000{i}", "price_cents": 100 * i} for i in range(5)],
    "total": 5,
    "generated_at": "2026-11-25T12:00:00Z",
}


def test_should_mirror_methods_and_sample() -> None:
    cfg = shadow_cfg()
    assert should_mirror(cfg, "GET") and should_mirror(cfg, "HEAD")
    assert not should_mirror(cfg, "POST")
    assert not should_mirror(None, "GET")
    post = shadow_cfg(methods=["POST", "GET"])
    assert should_mirror(post, "POST") and not should_mirror(post, "HEAD")
    half = shadow_cfg(sample=0.5)
    assert should_mirror(half, "GET", rng=lambda: 0.49)
    assert not should_mirror(half, "GET", rng=lambda: 0.5)
    assert not should_mirror(shadow_cfg(sample=0), "GET", rng=lambda: 0.0)


async def test_match_is_counted_and_flushed(serve, pools, store, route) -> None:
    new = await serve(json_answer(INVENTORY))
    mirror = ShadowMirror(store)
    await mirror.start()
    await run_jobs(mirror, job(route, pools(new.url), primary_doc=INVENTORY))
    await mirror.close(2)
    (seen,) = new.requests
    assert seen["method"] == "GET" and seen["path_qs"] == "/api/inventory?limit=5"
    assert seen["headers"]["Host"] == "shop.example"
    assert seen["headers"]["X-Gateway-Shadow"] == "1"
    (stats,) = await store.load(route)
    assert stats.counts == {"match": 1}
    assert sum(stats.primary_latency.values()) == 1 and sum(stats.shadow_latency.values()) == 1
    assert counter(route, "match") == 1


async def test_mismatch_records_fields_and_example_without_secrets(
    serve, pools, store, route, tmp_path
) -> None:
    changed = orjson.loads(orjson.dumps(INVENTORY))
    changed["items"][3]["price_cents"] = 301
    changed["generated_at"] = "later"
    new = await serve(json_answer(changed))
    cfg = shadow_cfg(ignore=["generated_at"])
    secret = [
        ("Host", "shop.example"),
        ("Authorization", "Bearer s3cr3t-token"),
        ("Cookie", "session=c00kie-value"),
    ]
    mirror = ShadowMirror(store)
    await mirror.start()
    await run_jobs(
        mirror,
        job(route, pools(new.url), primary_doc=INVENTORY, cfg=cfg, headers=secret),
    )
    await mirror.close(2)
    # The shadow gets the request as the primary did, credentials included ...
    assert new.requests[0]["headers"]["Authorization"] == "Bearer s3cr3t-token"
    (stats,) = await store.load(route)
    assert stats.counts == {"mismatch": 1}
    assert stats.fields == {"items[*].price_cents": 1}
    (ex,) = stats.examples
    assert ex["method"] == "GET" and ex["path"] == "/api/inventory"
    assert ex["status"] == {"primary": 200, "shadow": 200}
    assert ex["diffs"] == [{"path": "items[3].price_cents", "primary": 300, "shadow": 301}]
    assert ex["at"].endswith("Z")
    # ... but nothing of them is ever stored.
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("shadow.db*"))
    assert b"s3cr3t" not in raw and b"c00kie" not in raw
    assert "s3cr3t" not in orjson.dumps(ex).decode()


async def test_status_difference_is_a_mismatch(serve, pools, store, route) -> None:
    new = await serve(json_answer({"error": "not_found", "detail": "x"}, status=404))
    mirror = ShadowMirror(store)
    await mirror.start()
    await run_jobs(mirror, job(route, pools(new.url), primary_doc={"sku": "SKU-0001"}))
    await mirror.close(2)
    (stats,) = await store.load(route)
    assert stats.counts == {"mismatch": 1}
    assert "<status>" in stats.fields
    assert stats.examples[0]["status"] == {"primary": 200, "shadow": 404}


async def test_noise_auto_learns_from_reasking_the_primary(serve, pools, store, route) -> None:
    ticks = itertools.count()

    async def primary_answer(request: web.Request) -> web.Response:
        return web.json_response({"sku": "SKU-0001", "now": next(ticks)})

    legacy = await serve(primary_answer)
    new = await serve(json_answer({"sku": "SKU-0001", "now": "whatever"}))
    cfg = shadow_cfg(noise="auto", noise_sample=0.0)
    mirror = ShadowMirror(store, noise_warmup=2, workers=1)  # one at a time: learn, then classify
    await mirror.start()
    shadow_pool, primary_pool = pools(new.url), pools(legacy.url)
    jobs = [
        job(
            route,
            shadow_pool,
            primary_doc={"sku": "SKU-0001", "now": -1},
            primary_pool=primary_pool,
            cfg=cfg,
        )
        for _ in range(4)
    ]
    await run_jobs(mirror, *jobs)
    # Only the first noise_warmup requests re-ask the primary (noise_sample 0 after that).
    assert len(legacy.requests) == 2
    assert mirror.learned_noise(route) == {"now"}
    # A real difference is still a mismatch.
    await run_jobs(
        mirror,
        job(
            route,
            pools(new.url),
            primary_doc={"sku": "SKU-9", "now": 1},
            primary_pool=primary_pool,
            cfg=cfg,
        ),
    )
    await mirror.close(2)
    (stats,) = await store.load(route)
    assert stats.counts == {"noise": 4, "mismatch": 1}
    assert stats.noise_fields == {"now"}
    assert stats.fields == {"now": 5, "sku": 1}
    assert counter(route, "noise") == 4

    # A restarted gateway (or another replica) knows the learned noise without re-asking.
    again = ShadowMirror(store, noise_warmup=0, workers=1)
    await again.start()
    assert again.learned_noise(route) == {"now"}
    await run_jobs(
        again, job(route, shadow_pool, primary_doc={"sku": "SKU-0001", "now": 7}, cfg=cfg)
    )
    await again.close(2)
    assert len(legacy.requests) == 2
    (stats,) = await store.load(route)
    assert stats.counts["noise"] == 5


async def test_noise_sample_fraction_after_warmup(serve, pools, store, route) -> None:
    legacy = await serve(json_answer({"a": 1}))
    new = await serve(json_answer({"a": 1}))
    draws = iter([0.05, 0.5, 0.05, 0.9])
    mirror = ShadowMirror(store, noise_warmup=1, workers=1, rng=lambda: next(draws))
    await mirror.start()
    cfg = shadow_cfg(noise="auto", noise_sample=0.1)
    sp, pp = pools(new.url), pools(legacy.url)
    await run_jobs(
        mirror, *(job(route, sp, primary_doc={"a": 1}, primary_pool=pp, cfg=cfg) for _ in range(5))
    )
    await mirror.close(2)
    assert len(legacy.requests) == 1 + 2  # warm-up, then the two draws below 0.1


async def test_non_get_is_mirrored_but_never_reasked(serve, pools, store, route) -> None:
    legacy = await serve(json_answer({"id": 1}))
    new = await serve(json_answer({"id": 1}, status=201))
    cfg = shadow_cfg(methods=["POST"], noise="auto")
    mirror = ShadowMirror(store, noise_warmup=20)
    await mirror.start()
    await run_jobs(
        mirror,
        job(route, pools(new.url), primary_doc={"id": 1}, primary_pool=pools(legacy.url),
            cfg=cfg, method="POST", body=b'{"qty": 1}', status=201),
    )  # fmt: skip
    await mirror.close(2)
    assert legacy.requests == []
    assert new.requests[0]["method"] == "POST" and new.requests[0]["body"] == b'{"qty": 1}'
    (stats,) = await store.load(route)
    assert stats.counts == {"match": 1}


async def test_shadow_errors_are_errors_and_bounded_by_timeout(serve, pools, store, route) -> None:
    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(3)
        return web.json_response({})

    slow = await serve(hang)
    dead = pools(f"http://127.0.0.1:{procs.free_port()}")
    mirror = ShadowMirror(store)
    await mirror.start()
    started = time.monotonic()
    await run_jobs(
        mirror,
        job(route, dead, primary_doc={}),
        job(route, pools(slow.url), primary_doc={}, timeout=0.3),
    )
    assert time.monotonic() - started < 3
    await mirror.close(2)
    (stats,) = await store.load(route)
    assert stats.counts == {"error": 2}
    assert sum(stats.primary_latency.values()) == 2 and stats.shadow_latency == {}
    assert counter(route, "error") == 2


async def test_oversized_answers(serve, pools, store, route) -> None:
    new = await serve(json_answer({"blob": "x" * 500}))
    mirror = ShadowMirror(store)
    await mirror.start()
    cfg = shadow_cfg(max_body=100)
    await run_jobs(
        mirror,
        job(route, pools(new.url), primary_body=None, cfg=cfg),  # primary too large: skipped
        job(route, pools(new.url), primary_doc={"blob": "x"}, cfg=cfg),  # shadow too large
    )
    mirror.skip(route)  # request body too large: the proxy counts it without a job
    await mirror.close(2)
    assert len(new.requests) == 1
    (stats,) = await store.load(route)
    assert stats.counts == {"skipped": 2, "mismatch": 1}
    (ex,) = stats.examples
    assert ex["diffs"] == [
        {"path": "<body>", "primary": {"length": 12}, "shadow": {"length": ">100"}}
    ]


class Boom:
    async def exchange(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("bug")


async def test_a_failing_job_never_kills_a_worker(serve, pools, store, route) -> None:
    new = await serve(json_answer({}))
    mirror = ShadowMirror(store, workers=1)
    await mirror.start()
    await run_jobs(
        mirror, job(route, Boom(), primary_doc={}), job(route, pools(new.url), primary_doc={})
    )
    await mirror.close(2)
    (stats,) = await store.load(route)
    assert stats.counts == {"error": 1, "match": 1}


async def test_full_queue_drops_without_blocking(serve, pools, store, route) -> None:
    gate = asyncio.Event()

    async def blocked(request: web.Request) -> web.Response:
        await gate.wait()
        return web.json_response({})

    new = await serve(blocked)
    mirror = ShadowMirror(store, queue_size=3, workers=1)
    await mirror.start()
    pool = pools(new.url)
    assert mirror.submit(job(route, pool, primary_doc={}))
    await asyncio.sleep(0.2)  # the worker holds the first job, the queue is empty again
    started = time.perf_counter()
    results = [mirror.submit(job(route, pool, primary_doc={})) for _ in range(10)]
    elapsed = time.perf_counter() - started
    assert results == [True] * 3 + [False] * 7
    assert elapsed < 0.05
    assert metrics.REGISTRY.get_sample_value("gateway_shadow_queue_depth") == 3
    assert counter(route, "dropped") == 7
    gate.set()
    await mirror.close(5)
    assert metrics.REGISTRY.get_sample_value("gateway_shadow_queue_depth") == 0
    (stats,) = await store.load(route)
    assert stats.counts == {"dropped": 7, "match": 4}


async def test_close_drains_within_timeout_and_drops_the_rest(serve, pools, store, route) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.3)
        return web.json_response({})

    new = await serve(slow)
    mirror = ShadowMirror(store, workers=1)
    await mirror.start()
    pool = pools(new.url)
    for _ in range(10):
        assert mirror.submit(job(route, pool, primary_doc={}))
    started = time.monotonic()
    await mirror.close(0.5)
    assert time.monotonic() - started < 2.5
    (stats,) = await store.load(route)
    assert 1 <= stats.counts.get("match", 0) <= 3
    # Finished, or dropped (queued or in flight when the time was up): none lost.
    assert sum(stats.counts.values()) == 10
    assert not mirror.submit(job(route, pool, primary_doc={}))  # closed: dropped (metric only)
    assert counter(route, "dropped") == 10 - stats.counts["match"] + 1


async def test_periodic_flush_and_live_snapshot(serve, pools, store, route) -> None:
    new = await serve(json_answer({}))
    mirror = ShadowMirror(store, flush_interval=0.05)
    await mirror.start()
    try:
        await run_jobs(mirror, job(route, pools(new.url), primary_doc={}))
        (live,) = await mirror.snapshot(route)
        assert live.counts == {"match": 1}
        for _ in range(60):  # the flusher runs every 50 ms: give it up to 3 s
            if await store.load(route):
                break
            await asyncio.sleep(0.05)
        (stored,) = await store.load(route)
        assert stored.counts == {"match": 1}
    finally:
        await mirror.close(1)


async def test_open_mirror_context(serve, pools, tmp_path, route) -> None:
    new = await serve(json_answer({}))
    url = f"sqlite:///{tmp_path}/ctx.db"
    async with open_mirror(url) as mirror:
        await run_jobs(mirror, job(route, pools(new.url), primary_doc={}))
    check = SqlShadowStore(url)
    await check.start()
    (stats,) = await check.load(route)
    await check.close()
    assert stats.counts == {"match": 1}
