"""gateway/shadow/{store,sql_store,redis_store}.py against a real SQLite file and the real Redis."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.shadow.redis_store import RedisShadowStore
from gateway.shadow.sql_store import SqlShadowStore
from gateway.shadow.stats import RouteStats
from gateway.shadow.store import ShadowStore, store_from_url


def delta(route: str, *, at: str = "2026-11-25T12:00:00.000Z", n: int = 1) -> RouteStats:
    d = RouteStats(route)
    d.add_outcome("match", 10 * n)
    d.add_outcome("mismatch", n)
    d.add_outcome("dropped", n)
    d.add_field("items[*].price_cents", n)
    d.noise_fields.add("generated_at")
    d.add_latency("primary", 0.005)
    d.add_latency("shadow", 0.050)
    d.add_example(
        {
            "method": "GET",
            "path": "/api/x",
            "status": {"primary": 200, "shadow": 500},
            "diffs": [{"path": "<status>", "primary": 200, "shadow": 500}],
            "at": at,
        }
    )
    return d


@pytest.fixture(params=["sqlite", "redis", "postgresql"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/sub/shadow.db"
    if request.param == "postgresql":
        return str(request.getfixturevalue("make_pg_database")())
    redis_url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    return f"{redis_url}?prefix={prefix}"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[ShadowStore]:
    s = store_from_url(store_url, examples=3)
    await s.start()
    yield s
    await s.reset()
    await s.close()


def test_store_from_url_picks_backend() -> None:
    assert isinstance(store_from_url("sqlite:////tmp/x.db"), SqlShadowStore)
    assert isinstance(store_from_url("postgresql://u@h/db"), SqlShadowStore)
    r = store_from_url("redis://127.0.0.1:6379/0?prefix=blue")
    assert isinstance(r, RedisShadowStore)
    assert r.prefix == "blue" and "prefix" not in r.url
    assert isinstance(r, ShadowStore)


async def test_apply_adds_up_and_load_reads_back(store: ShadowStore) -> None:
    await store.apply({"a": delta("a"), "b": delta("b")})
    await store.apply({"a": delta("a", n=2, at="2026-11-25T12:00:01.000Z")})
    loaded = {s.route: s for s in await store.load()}
    assert sorted(loaded) == ["a", "b"]
    a = loaded["a"]
    assert a.counts == {"match": 30, "mismatch": 3, "dropped": 3}
    assert a.fields == {"items[*].price_cents": 3}
    assert a.noise_fields == {"generated_at"}
    assert sum(a.primary_latency.values()) == 2 and sum(a.shadow_latency.values()) == 2
    assert [e["at"] for e in a.examples] == ["2026-11-25T12:00:00.000Z", "2026-11-25T12:00:01.000Z"]
    (only_b,) = await store.load("b")
    assert only_b.counts["match"] == 10


async def test_examples_trimmed_to_last_n(store: ShadowStore) -> None:
    for i in range(5):
        await store.apply({"a": delta("a", at=f"2026-11-25T12:00:0{i}.000Z")})
    (a,) = await store.load("a")
    assert [e["at"][17:19] for e in a.examples] == ["02", "03", "04"]


async def test_load_noise_and_reset(store: ShadowStore) -> None:
    await store.apply({"a": delta("a"), "b": RouteStats("b", counts={"match": 1})})
    assert await store.load_noise() == {"a": {"generated_at"}}
    await store.reset("a")
    assert [s.route for s in await store.load()] == ["b"]
    assert await store.load("a") == []


async def test_empty_deltas_write_nothing(store: ShadowStore) -> None:
    await store.apply({"a": RouteStats("a")})
    assert await store.load() == []


async def test_stats_survive_a_new_store_instance(store_url: str) -> None:
    first = store_from_url(store_url)
    await first.start()
    await first.apply({"a": delta("a")})
    await first.close()
    second = store_from_url(store_url)
    await second.start()
    try:
        (a,) = await second.load()
        assert a.counts["match"] == 10
    finally:
        await second.reset()
        await second.close()


async def test_sqlite_uses_wal_and_creates_directory(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "shadow.db"
    store = SqlShadowStore(f"sqlite:///{path}")
    assert not store.exists
    await store.start()
    await store.apply({"a": delta("a")})
    await store.close()
    assert store.exists
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_sqlite_tables_created_by_a_sibling_worker_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # --workers N start together: another process may create the tables between this one's
    # existence check and its CREATE TABLE ("table ... already exists").
    from sqlalchemy import create_engine

    from gateway.shadow import sql_store

    url = f"sqlite:///{tmp_path / 'shadow.db'}"
    real = sql_store._meta.create_all
    raced: list[bool] = []

    def racing(bind, checkfirst: bool = True, **kw) -> None:  # type: ignore[no-untyped-def]
        if not raced:
            raced.append(True)
            sibling = create_engine(url)
            real(sibling)
            sibling.dispose()
            real(bind, checkfirst=False)  # this process looked before the sibling created them
        real(bind, checkfirst=checkfirst, **kw)

    monkeypatch.setattr(sql_store._meta, "create_all", racing)
    store = SqlShadowStore(url)
    await store.start()
    await store.apply({"a": delta("a")})
    (a,) = await store.load()
    assert raced and a.route == "a"
    await store.close()
