"""The idempotency store adapters (memory, SQLite, Redis) against one contract and a reference model."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.idempotency.core import Answer, InFlight, Stored, Verdict, decide
from gateway.idempotency.redis_store import RedisStore
from gateway.idempotency.sqlite_store import SqliteStore
from gateway.idempotency.store import IdempotencyStore, MemoryStore, StoreUnavailable
from tests.gateway.conftest import dead_port

ANSWER = Answer(201, "Created", (("Content-Type", "application/json"),), b'{"id": 1}', "orders")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _cleanup_redis(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(request, tmp_path: Path) -> AsyncIterator[IdempotencyStore]:
    """Each adapter, started; Redis under a unique key prefix that is removed afterwards."""
    prefix = ""
    made: IdempotencyStore
    if request.param == "memory":
        made = MemoryStore()
    elif request.param == "sqlite":
        made = SqliteStore(str(tmp_path / "var" / "idempotency.db"))
    else:
        url = request.getfixturevalue("redis_url")
        prefix = f"test-{uuid.uuid4().hex[:10]}"
        made = RedisStore(url, prefix=prefix)
    await made.start()
    try:
        yield made
    finally:
        await made.close()
        if prefix:
            _cleanup_redis(request.getfixturevalue("redis_url"), prefix)


# -- the contract, for every adapter ---------------------------------------------------------------
async def test_claim_is_exclusive_until_settled(store: IdempotencyStore) -> None:
    assert await store.claim("r:k", "fp", "t1", 30) is None
    assert await store.claim("r:k", "fp", "t2", 30) == InFlight("fp")
    assert await store.claim("r:k", "other", "t2", 30) == InFlight("fp")
    # The owner asking again (a retried call whose first try did run) still holds it.
    assert await store.claim("r:k", "fp", "t1", 30) is None
    assert await store.claim("r:other", "fp", "t2", 30) is None  # keys are independent


async def test_complete_stores_the_answer_for_repeats(store: IdempotencyStore) -> None:
    assert await store.claim("r:k", "fp", "t1", 30) is None
    assert await store.complete("r:k", "t2", "fp", ANSWER, 60) is False  # not t2's claim
    assert await store.complete("r:k", "t1", "fp", ANSWER, 60) is True
    assert await store.claim("r:k", "fp", "t3", 30) == Stored("fp", ANSWER)
    assert await store.complete("r:k", "t1", "fp", ANSWER, 60) is False  # settled once
    assert await store.release("r:k", "t1") is False  # a stored answer is never released
    assert await store.claim("r:k", "fp", "t4", 30) == Stored("fp", ANSWER)


async def test_release_frees_the_key_for_a_retry(store: IdempotencyStore) -> None:
    assert await store.claim("r:k", "fp", "t1", 30) is None
    assert await store.release("r:k", "t2") is False
    assert await store.release("r:k", "t1") is True
    assert await store.release("r:k", "t1") is False
    assert await store.claim("r:k", "fp", "t2", 30) is None


async def test_big_binary_answer_round_trips(store: IdempotencyStore) -> None:
    body = bytes(range(256)) * 4096  # 1 MiB with every byte value and newlines
    answer = Answer(200, "OK", (("Content-Type", "application/octet-stream"),), body, "legacy")
    assert await store.claim("r:big", "fp", "t1", 30) is None
    assert await store.complete("r:big", "t1", "fp", answer, 60) is True
    assert await store.claim("r:big", "fp", "t2", 30) == Stored("fp", answer)


async def test_concurrent_claims_one_winner(store: IdempotencyStore) -> None:
    results = await asyncio.gather(*(store.claim("r:race", "fp", f"t{i}", 30) for i in range(50)))
    assert sum(r is None for r in results) == 1
    assert all(r == InFlight("fp") for r in results if r is not None)


async def test_redis_records_expire_by_themselves(redis_url: str, redis_prefix: str) -> None:
    made = RedisStore(redis_url, prefix=redis_prefix)
    await made.start()
    try:
        assert await made.claim("r:k", "fp", "t1", 0.2) is None
        assert await made.claim("r:k", "fp", "t2", 0.2) == InFlight("fp")
        await asyncio.sleep(0.3)  # a gateway that died mid-request: its claim lapses
        assert await made.claim("r:k", "fp", "t2", 30) is None
        assert await made.complete("r:k", "t2", "fp", ANSWER, 0.2) is True
        assert await made.claim("r:k", "fp", "t3", 30) == Stored("fp", ANSWER)
        await asyncio.sleep(0.3)
        assert await made.claim("r:k", "fp", "t3", 30) is None
        assert await made.complete("r:k", "t1", "fp", ANSWER, 60) is False  # a late answer
    finally:
        await made.close()
        _cleanup_redis(redis_url, redis_prefix)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_expiry_moves_with_the_clock(kind: str, tmp_path: Path) -> None:
    clock = Clock()
    made: IdempotencyStore = (
        MemoryStore(clock) if kind == "memory" else SqliteStore(str(tmp_path / "i.db"), clock=clock)
    )
    await made.start()
    try:
        assert await made.claim("r:k", "fp", "t1", 35) is None
        clock.now += 34.9
        assert await made.claim("r:k", "fp", "t2", 35) == InFlight("fp")
        clock.now += 0.1  # the claim's hold is over: the key is free again
        assert await made.claim("r:k", "fp", "t2", 35) is None
        assert await made.complete("r:k", "t1", "fp", ANSWER, 60) is False  # t1 lost it
        assert await made.complete("r:k", "t2", "fp", ANSWER, 60) is True
        clock.now += 59.9
        assert await made.claim("r:k", "fp", "t3", 35) == Stored("fp", ANSWER)
        clock.now += 0.1
        assert await made.claim("r:k", "other", "t3", 35) is None  # after ttl: a new request
    finally:
        await made.close()


# -- failure: StoreUnavailable, then recovery -----------------------------------------------------------
async def test_unreachable_redis_fails_fast() -> None:
    made = RedisStore(f"redis://127.0.0.1:{dead_port()}/0", prefix="x")
    await made.start()
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await made.claim("r:k", "fp", "t", 30)
        with pytest.raises(StoreUnavailable):
            await made.complete("r:k", "t", "fp", ANSWER, 60)
        with pytest.raises(StoreUnavailable):
            await made.release("r:k", "t")
        assert time.monotonic() - started < 3
    finally:
        await made.close()


async def test_unusable_sqlite_path_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the store's directory should be")
    made = SqliteStore(str(blocker / "idempotency.db"))
    await made.start()
    try:
        with pytest.raises(StoreUnavailable):
            await made.claim("r:k", "fp", "t", 30)
    finally:
        await made.close()


async def test_unstarted_stores_are_unavailable(tmp_path: Path) -> None:
    for made in (SqliteStore(str(tmp_path / "i.db")), RedisStore("redis://127.0.0.1:1/0")):
        with pytest.raises(StoreUnavailable):
            await made.claim("r:k", "fp", "t", 30)


async def test_sqlite_locked_past_busy_timeout_then_recovers(tmp_path: Path) -> None:
    path = tmp_path / "i.db"
    made = SqliteStore(str(path), busy_timeout=0.2)
    await made.start()
    try:
        assert await made.claim("r:a", "fp", "t1", 30) is None  # creates the file and table
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holding the write lock
        try:
            # A stored or in-flight record is still readable under WAL...
            assert await made.claim("r:a", "fp", "t2", 30) == InFlight("fp")
            # ...but a new claim needs the lock, and waits at most the busy timeout.
            with pytest.raises(StoreUnavailable):
                await made.claim("r:b", "fp", "t2", 30)
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert await made.claim("r:b", "fp", "t2", 30) is None
    finally:
        await made.close()


async def test_sqlite_purges_expired_rows(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "i.db"
    made = SqliteStore(str(path), clock=clock, purge_every=60)
    await made.start()
    try:
        for i in range(20):
            assert await made.claim(f"r:{i}", "fp", "t", 1) is None
        clock.now += 120
        assert await made.claim("r:new", "fp", "t", 1) is None
        assert await made.release("r:new", "t") is True  # a write: purges what has expired
        with sqlite3.connect(path) as db:
            assert db.execute("SELECT count(*) FROM gateway_idempotency").fetchone() == (0,)
    finally:
        await made.close()


# -- several processes sharing one SQLite file ---------------------------------------------------------
def _claim_many(path: str, keys: list[str], start: float, out: multiprocessing.Queue) -> None:
    async def run() -> list[str]:
        made = SqliteStore(path)
        await made.start()
        won = []
        try:
            # Start together, so that the claims really race.
            await asyncio.sleep(max(0.0, start - time.time()))
            token = uuid.uuid4().hex
            for key in keys:
                if await made.claim(key, "fp", token, 30) is None:
                    won.append(key)
        finally:
            await made.close()
        return won

    out.put(asyncio.run(run()))


def test_sqlite_claim_is_atomic_across_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    keys = [f"r:{i}" for i in range(60)]
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = ctx.Queue()
    start = time.time() + 2.0
    procs = [ctx.Process(target=_claim_many, args=(path, keys, start, out)) for _ in range(4)]
    for p in procs:
        p.start()
    try:
        results = [out.get(timeout=60) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
    won = [k for r in results for k in r]
    assert sorted(won) == sorted(keys)  # every key claimed exactly once


# -- the reference model ---------------------------------------------------------------------------------
HOLD, TTL = 2.0, 10.0


@dataclass
class Model:
    """What SPEC §4.12 says, in the plainest terms: one record per key, live until it expires."""

    now: float = 0.0
    items: dict[str, tuple[str, str, str, Answer | None, float]] = field(default_factory=dict)

    def live(self, key: str) -> tuple[str, str, str, Answer | None, float] | None:
        item = self.items.get(key)
        return item if item is not None and item[4] > self.now else None

    def request(self, key: str, fp: str, token: str) -> tuple[Verdict, Answer | None]:
        item = self.live(key)
        if item is None:
            self.items[key] = (token, "in_flight", fp, None, self.now + HOLD)
            return Verdict.FORWARD, None
        if item[2] != fp:
            return Verdict.REUSED, None
        if item[1] == "in_flight":
            return Verdict.IN_PROGRESS, None
        return Verdict.REPLAY, item[3]

    def finish(self, key: str, token: str, fp: str, answer: Answer | None) -> bool:
        item = self.live(key)
        if item is None or item[0] != token or item[1] != "in_flight":
            return False
        if answer is None:
            del self.items[key]
        else:
            self.items[key] = (token, "stored", fp, answer, self.now + TTL)
        return True


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("request"), st.sampled_from("ab"), st.sampled_from(["f1", "f2"])),
        st.tuples(st.just("finish"), st.integers(0, 3), st.sampled_from([201, 200, 409, 500])),
        st.tuples(st.just("advance"), st.sampled_from([0.5, 1.0, 2.0, 3.0, 11.0]), st.none()),
    ),
    max_size=30,
)


async def _replay_against_model(
    made: IdempotencyStore, ops: list, model: Model, advance: Callable[[float], None]
) -> None:
    outstanding: list[tuple[str, str, str]] = []
    for n, (op, a, b) in enumerate(ops):
        if op == "request":
            token = f"t{n}"
            existing = await made.claim(a, b, token, HOLD)
            verdict = decide(existing, b)
            want, answer = model.request(a, b, token)
            assert verdict is want, (n, op, a, b)
            if verdict is Verdict.REPLAY:
                assert isinstance(existing, Stored) and existing.answer == answer
            if verdict is Verdict.FORWARD:
                outstanding.append((a, token, b))
        elif op == "finish" and outstanding:
            key, token, fp = outstanding.pop(a % len(outstanding))
            if 200 <= b < 300:
                answer = Answer(b, "", (("X-N", str(n)),), f"answer {n}".encode(), "a")
                got = await made.complete(key, token, fp, answer, TTL)
                assert got is model.finish(key, token, fp, answer), (n, op)
            else:
                got = await made.release(key, token)
                assert got is model.finish(key, token, fp, None), (n, op)
        elif op == "advance":
            model.now += a
            advance(a)


@settings(max_examples=150, deadline=None)
@given(ops=_ops)
def test_memory_store_matches_the_model(ops) -> None:
    clock = Clock()
    model = Model(now=clock.now)

    def advance(dt: float) -> None:
        clock.now += dt

    asyncio.run(_replay_against_model(MemoryStore(clock), ops, model, advance))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_ops)
def test_sqlite_store_matches_the_model(ops) -> None:
    clock = Clock()
    model = Model(now=clock.now)

    def advance(dt: float) -> None:
        clock.now += dt

    async def run(path: str) -> None:
        made = SqliteStore(path, clock=clock)
        await made.start()
        try:
            await _replay_against_model(made, ops, model, advance)
        finally:
            await made.close()

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(f"{tmp}/i.db"))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_ops.map(lambda ops: [op for op in ops if op[0] != "advance"]))
def test_redis_store_matches_the_model(redis_url: str, ops) -> None:
    # Redis keeps its own clock: no time moves here (expiry is tested above with real time).
    prefix = f"test-{uuid.uuid4().hex[:10]}"

    async def run() -> None:
        made = RedisStore(redis_url, prefix=prefix)
        await made.start()
        try:
            await _replay_against_model(made, ops, Model(), lambda dt: None)
        finally:
            await made.close()

    try:
        asyncio.run(run())
    finally:
        _cleanup_redis(redis_url, prefix)
