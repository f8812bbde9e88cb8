"""The demo load and the lag watcher.

The load is open-loop (a fixed rate, whatever the latency): orders placed half on the legacy and
half on the orders service, a share of the operations cancelling an order placed a while ago (on
either side), and, for the stock lag, reservations made and released at the inventory service
(the stock authority) under order ids far above both sides' ranges.

Every successful write becomes a `Probe`: "this record must show this state on the other side".
One watcher thread looks every `interval` seconds, with one batched query per side, directly in
the other side's database (read-only SELECTs). The orders service's GET /api/orders/{id} is not
used for legacy -> new by default: on a 404 for a legacy id it asks the legacy and stores the order
(read-repair), which would measure the read-repair, not the change stream (use --watch http to
measure what a client of the GET sees). The observed time is the start of the look that first
saw the change: an upper bound, at most one interval late.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx
import sqlalchemy as sa

from bench.dataflow.data import engine_for

# Probe kinds, as reported (direction, what)
LEGACY_PLACED = ("legacy -> new", "order placed")
LEGACY_CANCELLED = ("legacy -> new", "order cancelled")
NEW_PLACED = ("new -> legacy", "order placed")
NEW_CANCELLED = ("new -> legacy", "order cancelled")
STOCK_RESERVED = ("inventory -> legacy", "reservation made")
STOCK_RELEASED = ("inventory -> legacy", "reservation released")
KINDS = (LEGACY_PLACED, LEGACY_CANCELLED, NEW_PLACED, NEW_CANCELLED, STOCK_RESERVED, STOCK_RELEASED)

# Synthetic order ids of the stock probes: far above what the legacy (< 1e9) and the new services
# (sequential from 1e9) allocate, and below the APIs' bound for a body's integer (2**31 - 1).
PROBE_ORDER_BASE = 2_100_000_000


@dataclass
class Probe:
    kind: tuple[str, str]
    side: str  # where to look: "orders" or "legacy"
    key: Any  # order id, or (sku, order_id) for reservations
    want: str  # "placed" | "cancelled" | "present" | "absent"
    t0: float
    deadline: float
    seen: float | None = None

    @property
    def lag(self) -> float | None:
        return None if self.seen is None else max(0.0, self.seen - self.t0)


class Watcher(threading.Thread):
    """Looks for the probes' changes on the other side until each is seen or times out."""

    def __init__(
        self,
        *,
        db_urls: dict[str, str],
        http_urls: dict[str, str],
        mode: str = "db",
        interval: float = 0.01,
    ) -> None:
        super().__init__(name="lag-watcher", daemon=True)
        self.mode = mode
        self.interval = interval
        self._lock = threading.Lock()
        self._pending: list[Probe] = []
        self.done: list[Probe] = []
        self._stop_event = threading.Event()
        self._engines = {side: engine_for(db_urls[side]) for side in ("legacy", "orders")}
        self._http = httpx.Client(timeout=5.0) if mode == "http" else None
        self._http_urls = http_urls
        self.looks = 0

    # --- API for the load ----------------------------------------------------------------------

    def expect(self, probe: Probe) -> None:
        with self._lock:
            self._pending.append(probe)

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no probe is pending (seen or timed out); bounded."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.pending():
                return True
            time.sleep(0.02)
        return not self.pending()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)
        for engine in self._engines.values():
            engine.dispose()
        if self._http is not None:
            self._http.close()

    def take(self) -> list[Probe]:
        """The finished probes so far (and forget them)."""
        with self._lock:
            out, self.done = self.done, []
        return out

    # --- the thread ----------------------------------------------------------------------------

    def run(self) -> None:
        while not self._stop_event.is_set():
            tick = time.perf_counter()
            with self._lock:
                batch = list(self._pending)
            if batch:
                try:
                    self._look(batch, tick)
                except Exception as exc:  # a busy database: look again next tick
                    print(f"  watcher: {type(exc).__name__}: {exc}", flush=True)
                self.looks += 1
            now = time.perf_counter()
            with self._lock:
                finished = [p for p in self._pending if p.seen is not None or now > p.deadline]
                if finished:
                    ids = {id(p) for p in finished}
                    self._pending = [p for p in self._pending if id(p) not in ids]
                    self.done.extend(finished)
            self._stop_event.wait(max(0.0, self.interval - (time.perf_counter() - tick)))

    def _look(self, batch: list[Probe], tick: float) -> None:
        by_side: dict[tuple[str, bool], list[Probe]] = {}
        for p in batch:
            by_side.setdefault((p.side, p.want in ("present", "absent")), []).append(p)
        for (side, stock), probes in by_side.items():
            if self.mode == "http":
                self._look_http(side, stock, probes)
                continue
            with self._engines[side].connect() as conn:
                t = time.perf_counter()
                if stock:
                    ids = sorted({p.key[1] for p in probes})
                    rows = conn.execute(
                        sa.text(
                            "SELECT sku, order_id FROM reservations WHERE order_id IN :ids"
                        ).bindparams(sa.bindparam("ids", expanding=True)),
                        {"ids": ids},
                    ).all()
                    held = {(r[0], int(r[1])) for r in rows}
                    for p in probes:
                        if (p.key in held) == (p.want == "present"):
                            p.seen = t
                else:
                    ids = sorted({p.key for p in probes})
                    rows = conn.execute(
                        sa.text("SELECT id, status FROM orders WHERE id IN :ids").bindparams(
                            sa.bindparam("ids", expanding=True)
                        ),
                        {"ids": ids},
                    ).all()
                    status = {int(r[0]): r[1] for r in rows}
                    for p in probes:
                        if _order_ok(status.get(p.key), p.want):
                            p.seen = t

    def _look_http(self, side: str, stock: bool, probes: list[Probe]) -> None:
        assert self._http is not None
        base = self._http_urls[side]
        for p in probes:
            t = time.perf_counter()
            if stock:
                sku, order_id = p.key
                r = self._http.get(f"{base}/api/inventory/{sku}/reservations?limit=500")
                held = r.status_code == 200 and any(
                    it.get("order_id") == order_id for it in r.json().get("items", [])
                )
                if held == (p.want == "present"):
                    p.seen = t
            else:
                r = self._http.get(f"{base}/api/orders/{p.key}")
                got = r.json().get("status") if r.status_code == 200 else None
                if _order_ok(got, p.want):
                    p.seen = t


def _order_ok(status: str | None, want: str) -> bool:
    if status is None:
        return False
    return want == "placed" or status == want


# --- the load ----------------------------------------------------------------------------------


@dataclass
class LoadStats:
    requests: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    changes: int = 0  # successful writes that must show on the other side
    errors: list[str] = field(default_factory=list)
    latency: dict[str, list[float]] = field(default_factory=dict)  # seconds, per request kind

    def count(self, what: str, status: int | str, seconds: float) -> None:
        self.requests += 1
        key = f"{what} {status}"
        self.by_status[key] = self.by_status.get(key, 0) + 1
        self.latency.setdefault(what, []).append(seconds)

    def summary(self) -> str:
        return ", ".join(f"{k}: {v}" for k, v in sorted(self.by_status.items()))

    def latency_summary(self) -> str:
        """p50/p99 of each request kind, in ms."""
        out = []
        for what, values in sorted(self.latency.items()):
            ordered = sorted(values)
            p50 = ordered[len(ordered) // 2]
            p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
            out.append(f"{what} p50 {p50 * 1000:.0f} p99 {p99 * 1000:.0f}")
        return "; ".join(out)


class Load:
    """Writes at a fixed rate through the legacy's and the orders service's APIs."""

    def __init__(
        self,
        *,
        urls: dict[str, str],
        watcher: Watcher,
        skus: list[str],
        customers: list[int],
        seed: int,
        cancel_share: float = 0.1,
        probe_timeout: float = 30.0,
    ) -> None:
        self.urls = urls
        self.watcher = watcher
        self.skus = skus
        self.customers = customers
        self.rng = random.Random(seed)
        self.cancel_share = cancel_share
        self.probe_timeout = probe_timeout
        self.stats = LoadStats()
        # orders placed, cancellable later: (placed at, id, side that placed it)
        self._placed: list[tuple[float, int, str]] = []
        self._stock_seq = 0
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Load:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64),
            timeout=aiohttp.ClientTimeout(total=15),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def _probe(self, kind: tuple[str, str], side: str, key: Any, want: str, t0: float) -> None:
        self.watcher.expect(Probe(kind, side, key, want, t0, t0 + self.probe_timeout))

    async def _request(
        self, what: str, method: str, url: str, body: dict[str, Any] | None = None
    ) -> tuple[int, Any, float]:
        assert self._session is not None
        sent = time.perf_counter()
        try:
            async with self._session.request(method, url, json=body) as r:
                data = await r.json(content_type=None) if r.status != 204 else None
                t = time.perf_counter()
                self.stats.count(what, r.status, t - sent)
                if r.status >= 500 and len(self.stats.errors) < 20:
                    self.stats.errors.append(f"{method} {url}: {r.status} {str(data)[:300]}")
                return r.status, data, t
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self.stats.count(what, type(exc).__name__, time.perf_counter() - sent)
            if len(self.stats.errors) < 20:
                self.stats.errors.append(f"{method} {url}: {type(exc).__name__}: {exc}")
            return 0, None, time.perf_counter()

    # --- operations ----------------------------------------------------------------------------

    async def place(self, side: str) -> None:
        body = {
            "customer_id": self.rng.choice(self.customers),
            "items": [
                {"sku": s, "qty": 1} for s in self.rng.sample(self.skus, self.rng.randint(1, 2))
            ],
        }
        status, data, t = await self._request(
            f"POST {side} /api/orders", "POST", f"{self.urls[side]}/api/orders", body
        )
        if status == 201 and isinstance(data, dict):
            oid = int(data["id"])
            if side == "legacy":
                self._probe(LEGACY_PLACED, "orders", oid, "placed", t)
            else:
                self._probe(NEW_PLACED, "legacy", oid, "placed", t)
            self._placed.append((t, oid, side))
            self.stats.changes += 1

    async def cancel(self, side: str, order_id: int) -> None:
        status, _data, t = await self._request(
            f"POST {side} /api/orders/{{id}}/cancel",
            "POST",
            f"{self.urls[side]}/api/orders/{order_id}/cancel",
        )
        if status == 200:
            if side == "legacy":
                self._probe(LEGACY_CANCELLED, "orders", order_id, "cancelled", t)
            else:
                self._probe(NEW_CANCELLED, "legacy", order_id, "cancelled", t)
            self.stats.changes += 1

    def _cancellable(self, older_than: float) -> tuple[int, str] | None:
        """An order placed more than `older_than` s ago (so both sides have it), removed."""
        now = time.perf_counter()
        for i, (t, oid, _side) in enumerate(self._placed):
            if now - t >= older_than:
                del self._placed[i]
                return oid, self.rng.choice(("legacy", "orders"))
            break  # the list is in placement order: nothing older
        return None

    async def one_op(self, n: int) -> None:
        """Operation number `n` of the mix: a cancel (share `cancel_share`) or a placement."""
        if self.rng.random() < self.cancel_share:
            target = self._cancellable(older_than=2.0)
            if target is not None:
                await self.cancel(target[1], target[0])
                return
        await self.place("legacy" if n % 2 == 0 else "orders")

    async def stock_probe(self) -> None:
        """Reserve 1 at the inventory service, wait until the legacy shows it, release it."""
        self._stock_seq += 1
        order_id = PROBE_ORDER_BASE + self._stock_seq
        for _attempt in range(5):
            sku = self.rng.choice(self.skus)
            status, _data, t = await self._request(
                "POST inventory /api/inventory/{sku}/reservations",
                "POST",
                f"{self.urls['inventory']}/api/inventory/{sku}/reservations",
                {"order_id": order_id, "qty": 1},
            )
            if status in (200, 201):
                break
        else:
            return
        probe = Probe(
            STOCK_RESERVED, "legacy", (sku, order_id), "present", t, t + self.probe_timeout
        )
        self.watcher.expect(probe)
        self.stats.changes += 1
        for _tick in range(int((self.probe_timeout + 1) / 0.05)):  # bounded wait for the watcher
            if probe.seen is not None:
                break
            await asyncio.sleep(0.05)
        status, _data, t = await self._request(
            "DELETE inventory /api/inventory/{sku}/reservations/{id}",
            "DELETE",
            f"{self.urls['inventory']}/api/inventory/{sku}/reservations/{order_id}",
        )
        if status == 204:
            self._probe(STOCK_RELEASED, "legacy", (sku, order_id), "absent", t)
            self.stats.changes += 1

    # --- drivers -------------------------------------------------------------------------------

    async def run(
        self,
        *,
        rate: float,
        ops: int,
        stock_rate: float = 0.0,
        progress: Callable[[str], None] | None = None,
    ) -> float:
        """`ops` operations at `rate`/s (plus stock probes at `stock_rate`/s); returns seconds."""
        start = time.perf_counter()
        tasks: set[asyncio.Task[None]] = set()
        stock_task: asyncio.Task[None] | None = None
        if stock_rate > 0:
            stock_task = asyncio.create_task(self._stock_loop(stock_rate, ops / rate, tasks))
        for n in range(ops):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(self.one_op(n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            if progress is not None and n and n % max(1, int(rate * 10)) == 0:
                progress(f"{n}/{ops} operations, {self.watcher.pending()} changes in flight")
        if stock_task is not None:
            await stock_task
        if tasks:
            await asyncio.wait(tasks, timeout=60)
        for task in tasks:
            task.cancel()
        return time.perf_counter() - start

    async def _stock_loop(
        self, rate: float, seconds: float, tasks: set[asyncio.Task[None]]
    ) -> None:
        start = time.perf_counter()
        for n in range(int(rate * seconds)):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(self.stock_probe())
            tasks.add(task)
            task.add_done_callback(tasks.discard)


async def wait_http(url: str, within: float, alive: Callable[[], bool]) -> bool:
    """Poll `url` until it answers 200 within `within` s (gives up when the process died)."""
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() < deadline:
            if not alive():
                return False
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url) as r:
                    if r.status == 200:
                        return True
            await asyncio.sleep(0.1)
    return False
