"""Idempotency records in a SQLite file, safe for several gateway processes sharing it.

Every call runs on one dedicated thread per process (never on the event loop) with its own
connection. The claim is a read followed, only when no live record exists, by ``BEGIN IMMEDIATE``
(SQLite's write lock, held across processes), a second read and an insert: two processes can
never both claim a key. WAL lets readers proceed while another process writes; a busy timeout
waits out the others' short write transactions; ``synchronous=FULL`` keeps a stored answer
across a power loss (a lost answer could mean a second order).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from gateway.idempotency.core import Answer, InFlight, Record, Stored, decode_answer, encode_answer
from gateway.idempotency.store import StoreUnavailable

__all__ = ["SqliteStore"]

T = TypeVar("T")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS gateway_idempotency (
        key TEXT PRIMARY KEY,
        token TEXT NOT NULL,
        state TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        expires_at REAL NOT NULL,
        answer BLOB
    )""",
    "CREATE INDEX IF NOT EXISTS gateway_idempotency_expires ON gateway_idempotency (expires_at)",
)
_LIVE = (
    "SELECT token, state, fingerprint, answer FROM gateway_idempotency"
    " WHERE key = ? AND expires_at > ?"
)
_CLAIM = (
    "INSERT OR REPLACE INTO gateway_idempotency (key, token, state, fingerprint, expires_at, answer)"
    " VALUES (?, ?, 'in_flight', ?, ?, NULL)"
)
_COMPLETE = (
    "UPDATE gateway_idempotency SET state = 'stored', fingerprint = ?, expires_at = ?, answer = ?"
    " WHERE key = ? AND token = ? AND state = 'in_flight' AND expires_at > ?"
)
_RELEASE = (
    "DELETE FROM gateway_idempotency"
    " WHERE key = ? AND token = ? AND state = 'in_flight' AND expires_at > ?"
)
_PURGE = "DELETE FROM gateway_idempotency WHERE expires_at <= ?"


class SqliteStore:
    """:class:`~gateway.idempotency.store.IdempotencyStore` in the SQLite file at `path`.

    The file (and its directory) is made on first use, so a gateway whose routes never see a
    key never touches the disk. `clock` is wall-clock seconds, shared by every process.
    """

    def __init__(
        self,
        path: str,
        *,
        clock: Callable[[], float] = time.time,
        busy_timeout: float = 5.0,
        purge_every: float = 60.0,
    ) -> None:
        self.path = path
        self.clock = clock
        self.busy_timeout = busy_timeout
        self.purge_every = purge_every
        self._db: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._purged_at = 0.0

    def __repr__(self) -> str:
        return f"<SqliteStore {self.path}>"

    async def start(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="idempotency-sqlite")

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(executor, self._disconnect)
            executor.shutdown(wait=False)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise StoreUnavailable("idempotency store is not started")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except (sqlite3.Error, OSError, ValueError, KeyError) as exc:  # a corrupt row included
            raise StoreUnavailable(f"SQLite idempotency store {self.path}: {exc}") from exc

    # -- on the store's thread ---------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # Autocommit (isolation_level=None): transactions are exactly the BEGINs written below.
        db = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")
            for statement in _SCHEMA:
                db.execute(statement)
        except BaseException:
            db.close()
            raise
        self._db = db
        return db

    def _disconnect(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()

    def _guarded(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` on the connection; after any failure start over with a fresh connection."""
        db = self._connect()
        try:
            return fn(db)
        except BaseException:
            if db.in_transaction:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            self._disconnect()
            raise

    def _claim(self, key: str, fingerprint: str, token: str, hold: float) -> Record | None:
        def run(db: sqlite3.Connection) -> Record | None:
            # Most repeats find a live record: answer them without taking the write lock.
            row = db.execute(_LIVE, (key, self.clock())).fetchone()
            if row is not None and row[0] != token:
                return _record(row)
            db.execute("BEGIN IMMEDIATE")
            now = self.clock()
            row = db.execute(_LIVE, (key, now)).fetchone()
            if row is not None and row[0] != token:
                db.execute("COMMIT")
                return _record(row)
            db.execute(_CLAIM, (key, token, fingerprint, now + hold))
            db.execute("COMMIT")
            return None

        return self._guarded(run)

    def _complete(self, key: str, token: str, fingerprint: str, answer: bytes, ttl: float) -> bool:
        def run(db: sqlite3.Connection) -> bool:
            now = self.clock()
            # An expired claim is gone, as in Redis, even while its row waits for the purge.
            done = db.execute(_COMPLETE, (fingerprint, now + ttl, answer, key, token, now)).rowcount
            self._purge(db, now)
            return bool(done)

        return self._guarded(run)

    def _release(self, key: str, token: str) -> bool:
        def run(db: sqlite3.Connection) -> bool:
            now = self.clock()
            done = db.execute(_RELEASE, (key, token, now)).rowcount
            self._purge(db, now)
            return bool(done)

        return self._guarded(run)

    def _purge(self, db: sqlite3.Connection, now: float) -> None:
        # Expired rows are ignored by every read; deleting them now and then bounds the file.
        if now - self._purged_at >= self.purge_every:
            self._purged_at = now
            db.execute(_PURGE, (now,))

    # -- the port ----------------------------------------------------------------------------------
    async def claim(self, key: str, fingerprint: str, token: str, hold: float) -> Record | None:
        return await self._run(self._claim, key, fingerprint, token, hold)

    async def complete(
        self, key: str, token: str, fingerprint: str, answer: Answer, ttl: float
    ) -> bool:
        return await self._run(self._complete, key, token, fingerprint, encode_answer(answer), ttl)

    async def release(self, key: str, token: str) -> bool:
        return await self._run(self._release, key, token)


def _record(row: tuple[Any, ...]) -> Record:
    _token, state, fingerprint, answer = row
    if state == "stored":
        return Stored(fingerprint, decode_answer(bytes(answer)))
    return InFlight(fingerprint)
