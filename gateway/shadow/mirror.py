"""The shadow mirror: a bounded queue of copies, workers that replay and compare them.

The proxy's hot path calls only :func:`should_mirror` and :meth:`ShadowMirror.submit`; both
are synchronous and O(1). A full queue drops the copy (counted), so the client's response is
never delayed, and memory stays bounded by ``queue_size`` jobs of at most ``max_body`` each.
Results are aggregated in memory and flushed to the store about once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from gateway import metrics
from gateway.config import Shadow
from gateway.shadow.diff import (
    BODY,
    Answer,
    Diff,
    compare_answers,
    ignore_rules,
    is_noise_only,
    noise_patterns,
)
from gateway.shadow.stats import EXAMPLES_KEPT, RouteStats
from gateway.shadow.store import ShadowStore, store_from_url
from gateway.upstream import BodyTooLarge, UpstreamError, UpstreamResponse

__all__ = ["ExchangePort", "ShadowJob", "ShadowMirror", "open_mirror", "should_mirror"]

log = logging.getLogger("gateway.shadow")

_DEFAULT_METHODS = ("GET", "HEAD")
_REASK_METHODS = frozenset(_DEFAULT_METHODS)
_MAX_DIFFS_PER_EXAMPLE = 50
_MAX_VALUE_BYTES = 1024
SHADOW_HEADER = ("X-Gateway-Shadow", "1")


class ExchangePort(Protocol):
    """What the mirror needs of an upstream: :meth:`gateway.upstream.UpstreamPool.exchange`."""

    async def exchange(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        *,
        timeout: float,  # noqa: ASYNC109 - the port's contract
        idempotent: bool | None = None,
    ) -> UpstreamResponse: ...


@dataclass(slots=True, eq=False)
class ShadowJob:
    """One mirrored request and the primary's answer to it, as the proxy saw them.

    `target` and `headers` are exactly what went to the primary (path + query, normalised,
    rewritten). `primary_body` is the complete primary body, or None when it was larger than
    ``shadow.max_body`` (the job then counts as ``skipped``). `timeout` bounds the shadow's
    whole exchange (``shadow.timeout``, else the route's timeout).
    """

    route: str
    shadow: Shadow
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes | None
    primary_status: int
    primary_headers: list[tuple[str, str]]
    primary_body: bytes | None
    primary_latency: float
    shadow_pool: ExchangePort
    primary_pool: ExchangePort | None
    timeout: float


def should_mirror(
    shadow: Shadow | None, method: str, rng: Callable[[], float] = random.random
) -> bool:
    """Whether to mirror this request: the method is mirrored and it falls in the sample."""
    if shadow is None:
        return False
    if method not in (shadow.methods or _DEFAULT_METHODS):
        return False
    sample = shadow.sample
    return sample >= 1.0 or (sample > 0.0 and rng() < sample)


@dataclass(slots=True)
class _Fetched:
    answer: Answer
    latency: float
    truncated: bool


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _bounded(value: Any) -> Any:
    """A diff value small enough to keep: big sub-documents become a truncated JSON string."""
    if isinstance(value, (dict, list, str)):
        raw = orjson.dumps(value)
        if len(raw) > _MAX_VALUE_BYTES:
            return raw[:_MAX_VALUE_BYTES].decode(errors="ignore") + "...(truncated)"
    return value


def example_json(job: ShadowJob, shadow_status: int, diffs: Sequence[Diff]) -> dict[str, Any]:
    """A mismatch example: no headers at all (so no Authorization or Cookie), no query string."""
    request_id = next((v for k, v in job.headers if k.lower() == "x-request-id"), None)
    out_diffs = []
    for d in diffs[:_MAX_DIFFS_PER_EXAMPLE]:
        item = d.to_json()
        item["primary"] = _bounded(item["primary"])
        item["shadow"] = _bounded(item["shadow"])
        out_diffs.append(item)
    return {
        "method": job.method,
        "path": job.target.split("?", 1)[0],
        "status": {"primary": job.primary_status, "shadow": shadow_status},
        "diffs": out_diffs,
        "diff_count": len(diffs),
        "request_id": request_id,
        "at": _now(),
    }


class ShadowMirror:
    """Bounded queue + worker tasks + periodic flush of aggregates to a :class:`ShadowStore`."""

    def __init__(
        self,
        store: ShadowStore,
        *,
        queue_size: int = 1000,
        workers: int = 4,
        noise_warmup: int = 20,
        flush_interval: float = 1.0,
        examples: int = EXAMPLES_KEPT,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.queue_size = queue_size
        self.workers = workers
        self.noise_warmup = noise_warmup
        self.flush_interval = flush_interval
        self.examples = examples
        self._rng = rng
        self._queue: asyncio.Queue[ShadowJob] = asyncio.Queue(maxsize=queue_size)
        self._tasks: list[asyncio.Task[None]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._pending: dict[str, RouteStats] = {}
        self._noise: dict[str, set[str]] = {}
        self._asked: dict[str, int] = {}
        self._accepting = False
        self._flush_lock = asyncio.Lock()
        self._children: dict[tuple[str, str], Any] = {}

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load learned noise from the store and start the workers and the flusher."""
        if self._accepting:
            return
        try:
            for route, fields in (await self.store.load_noise()).items():
                self._noise.setdefault(route, set()).update(fields)
        except Exception:
            log.warning("shadow: could not load learned noise from %r", self.store, exc_info=True)
        self._tasks = [
            asyncio.create_task(self._work(), name=f"shadow-worker-{i}")
            for i in range(self.workers)
        ]
        self._flusher = asyncio.create_task(self._flush_loop(), name="shadow-flush")
        self._accepting = True
        metrics.SHADOW_QUEUE_DEPTH.set(0)

    async def close(self, flush_timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Stop accepting, finish queued copies within `flush_timeout`, flush the stats."""
        self._accepting = False
        if self._tasks:
            try:
                async with asyncio.timeout(flush_timeout):
                    await self._queue.join()
            except TimeoutError:
                pass
        for task in self._tasks:
            task.cancel()
        if self._flusher is not None:
            self._flusher.cancel()
        await asyncio.gather(*self._tasks, *filter(None, [self._flusher]), return_exceptions=True)
        self._tasks, self._flusher = [], None
        while not self._queue.empty():
            self._record_outcome(self._queue.get_nowait().route, "dropped")
            self._queue.task_done()
        metrics.SHADOW_QUEUE_DEPTH.set(0)
        try:
            async with asyncio.timeout(max(flush_timeout, 1.0)):
                await self.flush()
        except Exception:
            log.warning("shadow: final flush to %r failed", self.store, exc_info=True)

    # -- hot path ----------------------------------------------------------------------------------
    def submit(self, job: ShadowJob) -> bool:
        """Queue a copy without waiting; False (and counted as dropped) when the queue is full."""
        if not self._accepting:
            self._record_outcome(job.route, "dropped")
            return False
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self._record_outcome(job.route, "dropped")
            return False
        metrics.SHADOW_QUEUE_DEPTH.set(self._queue.qsize())
        return True

    def skip(self, route: str) -> None:
        """Count a request that was not mirrored because its body exceeded ``max_body``."""
        self._record_outcome(route, "skipped")

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    # -- reading -----------------------------------------------------------------------------------
    async def snapshot(self, route: str | None = None) -> list[RouteStats]:
        """Stored aggregates plus what is not flushed yet: the live view for admin."""
        stored = await self.store.load(route)
        by_route = {s.route: s for s in stored}
        for name, delta in self._pending.items():
            if route is not None and name != route:
                continue
            if name not in by_route:
                by_route[name] = RouteStats(name)
            by_route[name].merge(delta, self.examples)
        return [by_route[k] for k in sorted(by_route)]

    def learned_noise(self, route: str) -> frozenset[str]:
        return frozenset(self._noise.get(route, ()))

    # -- internals ---------------------------------------------------------------------------------
    def _delta(self, route: str) -> RouteStats:
        delta = self._pending.get(route)
        if delta is None:
            delta = self._pending[route] = RouteStats(route)
        return delta

    def _record_outcome(self, route: str, outcome: str) -> None:
        self._delta(route).add_outcome(outcome)
        child = self._children.get((route, outcome))
        if child is None:
            child = self._children[(route, outcome)] = metrics.SHADOW.labels(route, outcome)
        child.inc()

    async def _work(self) -> None:
        queue = self._queue
        while True:
            job = await queue.get()
            metrics.SHADOW_QUEUE_DEPTH.set(queue.qsize())
            try:
                await self._handle(job)
            except asyncio.CancelledError:
                # close() ran out of time with this copy in flight.
                self._record_outcome(job.route, "dropped")
                raise
            except Exception:
                log.exception("shadow: comparing a copy for route %s failed", job.route)
                self._record_outcome(job.route, "error")
            finally:
                queue.task_done()

    async def _fetch(
        self, pool: ExchangePort, job: ShadowJob, headers: list[tuple[str, str]]
    ) -> _Fetched:
        loop = asyncio.get_running_loop()
        started = loop.time()
        limit = job.shadow.max_body
        async with asyncio.timeout(job.timeout):
            resp = await pool.exchange(
                job.method, job.target, headers, job.body, timeout=job.timeout
            )
            try:
                try:
                    body = await resp.read(limit=limit, idle_timeout=job.timeout)
                    truncated = False
                except BodyTooLarge as exc:
                    body, truncated = exc.partial, True
            finally:
                resp.release()
        return _Fetched(Answer(resp.status, resp.headers, body), loop.time() - started, truncated)

    def _wants_reask(self, job: ShadowJob) -> bool:
        if job.shadow.noise != "auto" or job.primary_pool is None:
            return False
        if job.method not in _REASK_METHODS:
            return False
        seen = self._asked.get(job.route, 0) + 1
        self._asked[job.route] = seen
        return seen <= self.noise_warmup or self._rng() < job.shadow.noise_sample

    async def _handle(self, job: ShadowJob) -> None:
        if job.primary_body is None:
            self._record_outcome(job.route, "skipped")
            return
        primary = Answer(job.primary_status, job.primary_headers, job.primary_body)
        headers = [*job.headers, SHADOW_HEADER]
        shadow_call = self._fetch(job.shadow_pool, job, headers)
        reask: _Fetched | BaseException | None = None
        if self._wants_reask(job):
            assert job.primary_pool is not None
            shadow_res, reask = await asyncio.gather(
                shadow_call, self._fetch(job.primary_pool, job, headers), return_exceptions=True
            )
        else:
            try:
                shadow_res = await shadow_call
            except (UpstreamError, TimeoutError, OSError) as exc:
                shadow_res = exc
        if isinstance(shadow_res, asyncio.CancelledError):
            raise shadow_res
        delta = self._delta(job.route)
        ignore = ignore_rules(tuple(job.shadow.ignore))
        noise = self._noise.get(job.route)
        if isinstance(reask, _Fetched) and not reask.truncated:
            learned = noise_patterns(primary, reask.answer, ignore)
            if noise is None:
                noise = self._noise[job.route] = set()
            new = learned - noise
            if new:
                noise |= new
                delta.noise_fields |= new
        elif isinstance(reask, BaseException) and not isinstance(reask, Exception):
            raise reask
        delta.add_latency("primary", job.primary_latency)
        if isinstance(shadow_res, BaseException):
            if not isinstance(shadow_res, (UpstreamError, TimeoutError, OSError)):
                raise shadow_res
            self._record_outcome(job.route, "error")
            return
        delta.add_latency("shadow", shadow_res.latency)
        got = shadow_res.answer
        if shadow_res.truncated:
            # Only part of the shadow's body was read: compare the head, report the size.
            diffs = compare_answers(primary, Answer(got.status, got.headers, primary.body), ignore)
            limit = job.shadow.max_body
            diffs.append(Diff(BODY, {"length": len(primary.body)}, {"length": f">{limit}"}))
        else:
            diffs = compare_answers(primary, got, ignore)
        if not diffs:
            self._record_outcome(job.route, "match")
            return
        for path_pattern in {d.pattern for d in diffs}:
            delta.add_field(path_pattern)
        if job.shadow.noise == "auto" and noise and is_noise_only(diffs, noise):
            self._record_outcome(job.route, "noise")
            return
        self._record_outcome(job.route, "mismatch")
        delta.add_example(example_json(job, shadow_res.answer.status, diffs), self.examples)

    async def flush(self) -> None:
        """Write the pending aggregates to the store (put back if the store fails)."""
        async with self._flush_lock:
            pending, self._pending = self._pending, {}
            if not pending:
                return
            try:
                await self.store.apply(pending)
            except BaseException:
                for route, delta in pending.items():
                    delta.merge(self._pending.get(route, RouteStats(route)), self.examples)
                    self._pending[route] = delta
                raise

    async def _flush_loop(self) -> None:
        rounds = 0
        while True:
            await asyncio.sleep(self.flush_interval)
            rounds += 1
            try:
                await self.flush()
                if rounds % 30 == 0:
                    # Noise another replica learned (SPEC: a field once learned is noise everywhere).
                    for route, fields in (await self.store.load_noise()).items():
                        self._noise.setdefault(route, set()).update(fields)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("shadow: flushing stats to %r failed", self.store, exc_info=True)


@contextlib.asynccontextmanager
async def open_mirror(
    store_url: str, *, flush_timeout: float = 5.0, **options: Any
) -> AsyncIterator[ShadowMirror]:
    """Store + mirror, started and (on exit) drained, flushed and closed: for ``cleanup_ctx``."""
    store = store_from_url(store_url)
    await store.start()
    mirror = ShadowMirror(store, **options)
    try:
        await mirror.start()
        yield mirror
    finally:
        try:
            await mirror.close(flush_timeout)
        finally:
            await store.close()
