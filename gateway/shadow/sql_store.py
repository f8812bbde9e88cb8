"""Shadow stats in an SQL database through SQLAlchemy (SQLite by default, PostgreSQL too).

Two tables: ``shadow_counters`` (route, kind, key) -> value for every additive number, and
``shadow_examples`` for the last N mismatches per route. SQLAlchemy's engine is synchronous,
so every call runs in a worker thread; SQLite runs in WAL mode with a busy timeout so the
report CLI can read while the gateway writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    select,
    update,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from gateway.shadow.stats import EXAMPLES_KEPT, RouteStats

__all__ = ["SqlShadowStore"]

_meta = MetaData()
counters = Table(
    "shadow_counters",
    _meta,
    Column("route", String(200), primary_key=True),
    # count (key: outcome), field (key: pattern), noise (key: pattern), lat_primary / lat_shadow (key: bucket)
    Column("kind", String(16), primary_key=True),
    Column("key", String(500), primary_key=True),
    Column("value", Integer, nullable=False),
)
examples_table = Table(
    "shadow_examples",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("route", String(200), nullable=False, index=True),
    Column("at", String(40), nullable=False),
    Column("data", Text, nullable=False),
)


def _rows(delta: RouteStats) -> list[tuple[str, str, int]]:
    rows = [("count", k, v) for k, v in delta.counts.items()]
    rows += [("field", k, v) for k, v in delta.fields.items()]
    rows += [("noise", k, 1) for k in delta.noise_fields]
    rows += [("lat_primary", str(b), v) for b, v in delta.primary_latency.items()]
    rows += [("lat_shadow", str(b), v) for b, v in delta.shadow_latency.items()]
    return rows


def engine_url(url: str) -> str:
    """``postgres(ql)://`` -> ``postgresql+psycopg://`` (psycopg 3 is the driver we ship)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class SqlShadowStore:
    """:class:`~gateway.shadow.store.ShadowStore` on any SQLAlchemy URL (tables made on start)."""

    def __init__(self, url: str, *, examples: int = EXAMPLES_KEPT) -> None:
        self.url = engine_url(url)
        self.examples = examples
        self._engine: Engine | None = None

    def __repr__(self) -> str:
        return f"<SqlShadowStore {make_url(self.url).render_as_string(hide_password=True)}>"

    @property
    def exists(self) -> bool:
        """False for a SQLite file that is not there yet (a report then shows no data)."""
        parsed = make_url(self.url)
        if parsed.get_backend_name() != "sqlite" or not parsed.database:
            return True
        return parsed.database == ":memory:" or Path(parsed.database).exists()

    async def start(self) -> None:
        if self._engine is None:
            self._engine = await asyncio.to_thread(self._open)

    def _open(self) -> Engine:
        parsed = make_url(self.url)
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(self.url, connect_args={"timeout": 10})

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.close()

        else:
            engine = create_engine(self.url, pool_pre_ping=True)
        try:
            _meta.create_all(engine)
        except OperationalError:
            # A --workers sibling created a table between create_all's look and its CREATE
            # ("table ... already exists"); the second look finds it.
            _meta.create_all(engine)
        return engine

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            await asyncio.to_thread(engine.dispose)

    def _require(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("SqlShadowStore.start() was not awaited")
        return self._engine

    # -- writes ------------------------------------------------------------------------------------
    async def apply(self, deltas: Mapping[str, RouteStats]) -> None:
        todo = {r: d for r, d in deltas.items() if not d.is_empty()}
        if todo:
            await asyncio.to_thread(self._apply, todo)

    def _apply(self, deltas: Mapping[str, RouteStats]) -> None:
        with self._require().begin() as conn:
            for route, delta in deltas.items():
                for kind, key, value in _rows(delta):
                    self._add(conn, route, kind, key, value, kind == "noise")
                if delta.examples:
                    conn.execute(
                        examples_table.insert(),
                        [
                            {
                                "route": route,
                                "at": str(e.get("at", "")),
                                "data": orjson.dumps(e).decode(),
                            }
                            for e in delta.examples
                        ],
                    )
                    self._trim(conn, route)

    @staticmethod
    def _add(conn: Connection, route: str, kind: str, key: str, value: int, is_set: bool) -> None:
        key = key[:500]
        where = (counters.c.route == route) & (counters.c.kind == kind) & (counters.c.key == key)
        new_value: Any = value if is_set else counters.c.value + value
        if conn.execute(update(counters).where(where).values(value=new_value)).rowcount:
            return
        try:
            with conn.begin_nested():
                conn.execute(counters.insert().values(route=route, kind=kind, key=key, value=value))
        except IntegrityError:
            # Another replica inserted the row between our UPDATE and INSERT.
            conn.execute(update(counters).where(where).values(value=new_value))

    def _trim(self, conn: Connection, route: str) -> None:
        # The id of the Nth newest example: everything older goes.
        newest = conn.execute(
            select(examples_table.c.id)
            .where(examples_table.c.route == route)
            .order_by(examples_table.c.id.desc())
            .offset(self.examples - 1)
            .limit(1)
        ).scalar()
        if newest is not None:
            conn.execute(
                delete(examples_table).where(
                    (examples_table.c.route == route) & (examples_table.c.id < newest)
                )
            )

    async def reset(self, route: str | None = None) -> None:
        await asyncio.to_thread(self._reset, route)

    def _reset(self, route: str | None) -> None:
        with self._require().begin() as conn:
            for table in (counters, examples_table):
                stmt = delete(table)
                if route is not None:
                    stmt = stmt.where(table.c.route == route)
                conn.execute(stmt)

    # -- reads -------------------------------------------------------------------------------------
    async def load(self, route: str | None = None) -> list[RouteStats]:
        return await asyncio.to_thread(self._load, route)

    def _load(self, route: str | None) -> list[RouteStats]:
        stats: dict[str, RouteStats] = {}

        def get(name: str) -> RouteStats:
            if name not in stats:
                stats[name] = RouteStats(name)
            return stats[name]

        with self._require().connect() as conn:
            q = select(counters.c.route, counters.c.kind, counters.c.key, counters.c.value)
            e = select(examples_table.c.route, examples_table.c.data).order_by(examples_table.c.id)
            if route is not None:
                q = q.where(counters.c.route == route)
                e = e.where(examples_table.c.route == route)
            for name, kind, key, value in conn.execute(q):
                s = get(name)
                if kind == "count":
                    s.counts[key] = value
                elif kind == "field":
                    s.fields[key] = value
                elif kind == "noise":
                    s.noise_fields.add(key)
                elif kind == "lat_primary":
                    s.primary_latency[int(key)] = value
                elif kind == "lat_shadow":
                    s.shadow_latency[int(key)] = value
            for name, data in conn.execute(e):
                get(name).examples.append(orjson.loads(data))
        for s in stats.values():
            s.examples = s.examples[-self.examples :]
        return [stats[k] for k in sorted(stats)]

    async def load_noise(self) -> dict[str, set[str]]:
        return await asyncio.to_thread(self._load_noise)

    def _load_noise(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        with self._require().connect() as conn:
            rows = conn.execute(
                select(counters.c.route, counters.c.key).where(counters.c.kind == "noise")
            )
            for name, key in rows:
                out.setdefault(name, set()).add(key)
        return out
