"""The transactional outbox: events written with the change they describe, relayed to the bus.

A service inserts its event into its own `outbox` table in the same transaction as the change, so
an event exists if and only if the change committed. `OutboxRelay` publishes unpublished rows in
id order and only then marks them published: a crash between the two re-publishes on restart
(at least once); consumers dedupe by `event_id`.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from extracted.events.base import EventBus
from extracted.events.schema import Event

log = logging.getLogger("extracted.events.outbox")

_MAX_BACKOFF_S = 5.0


def outbox_table(metadata: sa.MetaData) -> sa.Table:
    """The `outbox` table on the service's own metadata (returned as-is if already defined)."""
    existing = metadata.tables.get("outbox")
    if existing is not None:
        return existing
    table = sa.Table(
        "outbox",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(32), nullable=False, unique=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
    )
    sa.Index(
        "ix_outbox_unpublished",
        table.c.id,
        postgresql_where=table.c.published_at.is_(None),
        sqlite_where=table.c.published_at.is_(None),
    )
    return table


def add_to_outbox(conn: sa.Connection | Session, table: sa.Table, event: Event) -> None:
    """Insert `event` as an unpublished row; call inside the transaction that makes the change."""
    conn.execute(
        table.insert().values(
            event_id=event.event_id,
            type=event.type,
            payload=event.to_json().decode(),
            created_at=datetime.now(UTC),
            published_at=None,
        )
    )


class OutboxRelay:
    """Publishes unpublished outbox rows in id order, at least once."""

    def __init__(
        self,
        engine: sa.Engine,
        table: sa.Table,
        bus: EventBus,
        *,
        poll_interval: float = 0.05,
        idle_interval: float = 0.4,
        batch: int = 100,
    ) -> None:
        self.engine = engine
        self.table = table
        self.bus = bus
        self.poll_interval = poll_interval
        self.idle_interval = max(idle_interval, poll_interval)
        self.batch = batch

    async def relay_once(self) -> int:
        """Publish up to `batch` unpublished rows in id order; returns how many were published."""
        rows = await asyncio.to_thread(self._fetch_unpublished)
        done: list[int] = []
        published = 0
        try:
            for row_id, payload in rows:
                try:
                    event = Event.from_json(payload)
                except ValueError as exc:
                    # cannot happen for rows written by add_to_outbox; never block the queue on it
                    log.error("outbox row %s is not a valid event (%s); skipping it", row_id, exc)
                    done.append(row_id)
                    continue
                await self.bus.publish(event)
                done.append(row_id)
                published += 1
        finally:
            # mark what did go out even when a later publish failed, to limit duplicates
            if done:
                await asyncio.to_thread(self._mark_published, done)
        return published

    async def run(self) -> None:
        """Relay until cancelled; bus or database errors are logged and retried with backoff.

        While rows keep coming it looks again every `poll_interval`; each empty look doubles the
        wait up to `idle_interval`, so an idle stack costs a couple of cheap queries a second.
        """
        backoff = self.poll_interval
        wait = self.poll_interval
        while True:
            try:
                n = await self.relay_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox relay failed (%s); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(max(backoff * 2, 0.1), _MAX_BACKOFF_S)
                continue
            backoff = self.poll_interval
            if n >= self.batch:
                continue  # a backlog: straight on
            wait = self.poll_interval if n else min(wait * 2, self.idle_interval)
            await asyncio.sleep(wait)

    def unpublished_count(self) -> int:
        """Rows not yet published (a health/metrics figure)."""
        t = self.table
        with self.engine.connect() as conn:
            query = sa.select(sa.func.count()).select_from(t).where(t.c.published_at.is_(None))
            return int(conn.execute(query).scalar_one())

    def _fetch_unpublished(self) -> list[tuple[int, str]]:
        t = self.table
        query = (
            sa.select(t.c.id, t.c.payload)
            .where(t.c.published_at.is_(None))
            .order_by(t.c.id)
            .limit(self.batch)
        )
        with self.engine.connect() as conn:
            return [(int(r.id), str(r.payload)) for r in conn.execute(query)]

    def _mark_published(self, ids: list[int]) -> None:
        t = self.table
        with self.engine.begin() as conn:
            conn.execute(t.update().where(t.c.id.in_(ids)).values(published_at=datetime.now(UTC)))
