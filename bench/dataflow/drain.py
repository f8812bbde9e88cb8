"""Has everything propagated? The bus's consumer groups caught up and every outbox relayed.

Read directly (read-only) from the event log (SQLite file or Redis stream) and the services'
`outbox` tables, so that the benchmark knows when the changes it made have all been processed
(the end of the cost measurement) without asking the services anything.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from bench.dataflow.data import engine_for

GROUPS = ("legacy", "orders", "inventory")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class FlowState:
    """Per consumer group: entries not yet read (lag) and read but not acked (pending)."""

    lag: dict[str, int] = field(default_factory=dict)
    pending: dict[str, int] = field(default_factory=dict)
    unrelayed: dict[str, int] = field(default_factory=dict)  # outbox rows not published, per db
    log_length: int = 0

    def describe(self) -> str:
        groups = ", ".join(
            f"{g}: lag {self.lag.get(g, '?')} pending {self.pending.get(g, '?')}"
            for g in sorted(set(self.lag) | set(self.pending))
        )
        outbox = ", ".join(f"{db}: {n}" for db, n in sorted(self.unrelayed.items()))
        return f"events {self.log_length}; groups {groups or 'none'}; unrelayed outbox {outbox}"


class FlowProbe:
    """Reads the bus and the outboxes of one stack."""

    def __init__(
        self,
        *,
        db_urls: dict[str, str],
        events_db: Path | None,
        redis_url: str | None,
        stream: str | None,
    ) -> None:
        self.engines = {name: engine_for(url) for name, url in db_urls.items()}
        self.events_db = events_db
        self.redis_url = redis_url
        self.stream = stream
        self._redis = None
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(redis_url, socket_timeout=5)

    def close(self) -> None:
        for engine in self.engines.values():
            engine.dispose()
        if self._redis is not None:
            self._redis.close()

    def state(self) -> FlowState:
        st = FlowState()
        if self._redis is not None:
            self._redis_state(st)
        elif self.events_db is not None and self.events_db.exists():
            self._sqlite_state(st)
        for name, engine in self.engines.items():
            try:
                with engine.connect() as conn:
                    st.unrelayed[name] = int(
                        conn.execute(
                            sa.text("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                        ).scalar_one()
                    )
            except sa.exc.DBAPIError:
                st.unrelayed[name] = -1  # no outbox table (yet)
        return st

    def _sqlite_state(self, st: FlowState) -> None:
        conn = sqlite3.connect(f"file:{self.events_db}?mode=ro", uri=True, timeout=10)
        try:
            (last,) = conn.execute("SELECT coalesce(max(id), 0) FROM log").fetchone()
            st.log_length = int(last)
            for group, last_id in conn.execute('SELECT "group", last_id FROM groups'):
                st.lag[group] = int(last) - int(last_id)
                st.pending[group] = 0
            for group, n in conn.execute('SELECT "group", count(*) FROM pending GROUP BY "group"'):
                st.pending[group] = int(n)
        except sqlite3.Error:
            pass  # the log's tables do not exist yet
        finally:
            conn.close()

    def _redis_state(self, st: FlowState) -> None:
        assert self._redis is not None and self.stream is not None
        try:
            info = self._redis.xinfo_stream(self.stream)
            groups = self._redis.xinfo_groups(self.stream)
        except Exception:
            return  # no stream yet
        st.log_length = int(info.get("length", 0))
        last = _text(info.get("last-generated-id", b""))
        for g in groups:
            name = _text(g["name"])
            lag = g.get("lag")
            if lag is None:  # Redis cannot tell (entries deleted): compare the ids
                lag = 0 if _text(g.get("last-delivered-id", b"")) == last else 1
            st.lag[name] = int(lag)
            st.pending[name] = int(g.get("pending", 0))

    def wait_drained(
        self, baseline: FlowState, timeout: float, *, extra: float = 0.0
    ) -> tuple[bool, FlowState, float]:
        """Wait until every group has read everything, acked all but its parked entries (as
        many as at `baseline`), and every outbox is relayed; bounded. Returns (drained, state,
        seconds waited)."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        clean_since: float | None = None
        st = self.state()
        while time.monotonic() < deadline:
            st = self.state()
            clean = (
                all(v == 0 for v in st.lag.values())
                and all(n <= baseline.pending.get(g, 0) for g, n in st.pending.items())
                and all(n <= 0 for n in st.unrelayed.values())
            )
            if clean:
                clean_since = clean_since or time.monotonic()
                # clean twice, `extra` apart: the last consumer's transaction has committed
                if time.monotonic() - clean_since >= max(extra, 0.1):
                    return True, st, time.monotonic() - t0
            else:
                clean_since = None
            time.sleep(0.05)
        return False, st, time.monotonic() - t0
