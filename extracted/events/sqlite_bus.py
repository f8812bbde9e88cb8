"""`SqliteLogBus`: the embedded event bus, an append-only log in one SQLite file.

Several processes may publish and read at once: the file is in WAL mode with a busy timeout, and
every read runs in one `BEGIN IMMEDIATE` transaction, so two consumers never take the same entry.
Semantics match `RedisStreamBus`: a group's offset (`groups.last_id`) marks what was handed out;
handed-out entries stay in `pending` with the consumer and the time they were claimed until acked;
a restarted consumer first gets its own pending entries again, and entries idle longer than
`claim_idle_ms` are claimed by whoever reads next.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from extracted.events.base import Delivery, EventBus, EventParking
from extracted.events.schema import Event

_T = TypeVar("_T")

DEFAULT_PATH = "var/events.db"
DEFAULT_CLAIM_IDLE_MS = 30_000
_POLL_MIN_S = 0.02
_POLL_MAX_S = 0.25

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS groups (
    "group" TEXT PRIMARY KEY,
    last_id INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS pending (
    "group" TEXT NOT NULL,
    id INTEGER NOT NULL,
    consumer TEXT NOT NULL,
    claimed_at REAL NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY ("group", id)
);
CREATE INDEX IF NOT EXISTS pending_by_consumer ON pending ("group", consumer, id);
"""

_Row = tuple[int, str | None]


class SqliteLogBus(EventParking, EventBus):
    """An `EventBus` on a SQLite file, safe for several processes; blocking calls run in threads."""

    def __init__(
        self,
        path: str | Path = DEFAULT_PATH,
        *,
        claim_idle_ms: int = DEFAULT_CLAIM_IDLE_MS,
        busy_timeout_ms: int = 10_000,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.claim_idle_ms = claim_idle_ms
        self.busy_timeout_ms = busy_timeout_ms
        # one connection used from worker threads, one call at a time (sqlite3 objects are not
        # safe for concurrent use, but sequential use from several threads is fine)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        # per (group, consumer): how far its own backlog (pending from an earlier life) was
        # handed out again; None once drained (parked entries stay pending, so a cursor is needed)
        self._backlog: dict[tuple[str, str], int | None] = {}
        # per (group, consumer): the current wait between empty looks (see `read`)
        self._delay: dict[tuple[str, str], float] = {}

    # --- connection ----------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout_ms / 1000,
                isolation_level=None,  # autocommit; transactions are explicit
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            self._conn = conn
        return self._conn

    def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        with self._lock:
            return fn(self._connect(), *args)

    # --- publish -------------------------------------------------------------------------------

    async def publish(self, event: Event) -> str:
        """Append the event to the log; returns its log id as a string."""
        return await asyncio.to_thread(self._run, _append, event.to_json().decode())

    # --- read ----------------------------------------------------------------------------------

    async def read(
        self, group: str, consumer: str, *, count: int = 100, block_ms: int = 1000
    ) -> list[Delivery]:
        """Own pending first, then idle entries of any consumer, then new ones (polls until block_ms)."""
        deadline = time.monotonic() + max(block_ms, 0) / 1000
        # The wait between empty looks grows across calls while the log stays idle, and each look
        # is a read-only query: the write lock is taken only when there is something to hand out.
        key = (group, consumer)
        while True:
            rows: list[_Row] = []
            gone: list[str] = []
            if await asyncio.to_thread(self._run, self._has_work, group, consumer):
                rows, gone = await asyncio.to_thread(self._run, self._take, group, consumer, count)
            deliveries = self._to_deliveries(rows)
            if gone:
                await self.ack(group, gone)
            if rows or gone:
                self._delay[key] = _POLL_MIN_S
                return deliveries
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            delay = self._delay.get(key, _POLL_MIN_S)
            await asyncio.sleep(min(delay, remaining))
            self._delay[key] = min(delay * 2, _POLL_MAX_S)

    def _has_work(self, conn: sqlite3.Connection, group: str, consumer: str) -> bool:
        """Whether `_take` could hand anything out (read-only; no write lock)."""
        if self._backlog.get((group, consumer), 0) is not None:
            return True  # the consumer's own backlog is read (once) by `_take`
        row = conn.execute('SELECT last_id FROM groups WHERE "group" = ?', (group,)).fetchone()
        last_id = row[0] if row else 0
        if conn.execute("SELECT 1 FROM log WHERE id > ? LIMIT 1", (last_id,)).fetchone():
            return True
        idle_since = time.time() - self.claim_idle_ms / 1000
        claimable = conn.execute(
            'SELECT 1 FROM pending WHERE "group" = ? AND claimed_at <= ? LIMIT 1',
            (group, idle_since),
        ).fetchone()
        return claimable is not None

    def _to_deliveries(self, rows: list[_Row]) -> list[Delivery]:
        deliveries = []
        for log_id, raw in rows:
            event = self.parse(str(log_id), raw)
            if event is not None:  # parked entries stay pending, unacked
                deliveries.append(Delivery(str(log_id), event))
        return deliveries

    def _take(
        self, conn: sqlite3.Connection, group: str, consumer: str, count: int
    ) -> tuple[list[_Row], list[str]]:
        """One transaction: hand out up to `count` entries to `consumer` (see the module doc)."""
        now = time.time()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute('INSERT OR IGNORE INTO groups ("group", last_id) VALUES (?, 0)', (group,))
            ids: list[int] = []
            cursor = self._backlog.get((group, consumer), 0)
            if cursor is not None:
                ids = _column(
                    conn,
                    'SELECT id FROM pending WHERE "group" = ? AND consumer = ? AND id > ? '
                    "ORDER BY id LIMIT ?",
                    (group, consumer, cursor, count),
                )
                self._backlog[(group, consumer)] = ids[-1] if ids else None
            if not ids:
                ids = _column(
                    conn,
                    'SELECT id FROM pending WHERE "group" = ? AND claimed_at <= ? ORDER BY id LIMIT ?',
                    (group, now - self.claim_idle_ms / 1000, count),
                )
            if ids:
                conn.executemany(
                    "UPDATE pending SET consumer = ?, claimed_at = ?, deliveries = deliveries + 1 "
                    'WHERE "group" = ? AND id = ?',
                    [(consumer, now, group, i) for i in ids],
                )
            else:
                (last_id,) = conn.execute(
                    'SELECT last_id FROM groups WHERE "group" = ?', (group,)
                ).fetchone()
                ids = _column(
                    conn, "SELECT id FROM log WHERE id > ? ORDER BY id LIMIT ?", (last_id, count)
                )
                if ids:
                    conn.executemany(
                        'INSERT INTO pending ("group", id, consumer, claimed_at) VALUES (?, ?, ?, ?)',
                        [(group, i, consumer, now) for i in ids],
                    )
                    conn.execute(
                        'UPDATE groups SET last_id = ? WHERE "group" = ?', (ids[-1], group)
                    )
            rows = _rows(conn, ids)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        # entries deleted from the log while pending cannot be delivered: ack them away
        found = {r[0] for r in rows}
        gone = [str(i) for i in ids if i not in found]
        return rows, gone

    # --- ack / close ---------------------------------------------------------------------------

    async def ack(self, group: str, delivery_ids: list[str]) -> None:
        """Remove the deliveries from the group's pending entries."""
        if delivery_ids:
            await asyncio.to_thread(self._run, _ack, group, [int(i) for i in delivery_ids])

    async def pending_count(self, group: str) -> int:
        """How many entries of `group` are delivered but not acked (for tests and health)."""
        return await asyncio.to_thread(self._run, _pending_count, group)

    async def close(self) -> None:
        """Close the SQLite connection."""

        def _close() -> None:
            with self._lock:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None

        await asyncio.to_thread(_close)


def _append(conn: sqlite3.Connection, payload: str) -> str:
    cur = conn.execute("INSERT INTO log (event) VALUES (?)", (payload,))
    return str(cur.lastrowid)


def _ack(conn: sqlite3.Connection, group: str, ids: list[int]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(
            'DELETE FROM pending WHERE "group" = ? AND id = ?', [(group, i) for i in ids]
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _pending_count(conn: sqlite3.Connection, group: str) -> int:
    (n,) = conn.execute('SELECT count(*) FROM pending WHERE "group" = ?', (group,)).fetchone()
    return int(n)


def _column(conn: sqlite3.Connection, sql: str, params: tuple[object, ...]) -> list[int]:
    return [r[0] for r in conn.execute(sql, params).fetchall()]


def _rows(conn: sqlite3.Connection, ids: list[int]) -> list[_Row]:
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    return conn.execute(
        f"SELECT id, event FROM log WHERE id IN ({marks}) ORDER BY id", ids
    ).fetchall()
