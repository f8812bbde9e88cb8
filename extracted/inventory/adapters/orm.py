"""The inventory database's tables (SQLAlchemy Core), the outbox and the backfill's progress."""

from __future__ import annotations

import sqlalchemy as sa

from extracted.events import outbox_table

metadata = sa.MetaData()


def _origin() -> sa.Column[str]:
    return sa.Column("origin", sa.String(16), nullable=False)


items = sa.Table(
    "items",
    metadata,
    sa.Column("sku", sa.String(64), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("price_cents", sa.BigInteger, nullable=False),
    sa.Column("on_hand", sa.BigInteger, nullable=False),
    _origin(),  # who last wrote the stock record: "inventory" (authority) or "legacy" (copy)
    sa.Column("updated_at", sa.DateTime, nullable=True),
    # The per-sku version of the stock record (see extracted.inventory.domain.model.Item).
    sa.Column("version", sa.BigInteger, nullable=False, server_default="0", default=0),
    # Read copy only: the version of the newest forwarded write mirrored here.
    sa.Column("floor", sa.BigInteger, nullable=False, server_default="0", default=0),
)

reservations = sa.Table(
    "reservations",
    metadata,
    sa.Column(
        "sku", sa.String(64), sa.ForeignKey("items.sku", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("order_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("qty", sa.BigInteger, nullable=False),
    _origin(),
    sa.Column("updated_at", sa.DateTime, nullable=True),
)

# Progress of resumable jobs (the backfill): where the next run continues, and whether it is done.
sync_state = sa.Table(
    "sync_state",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("cursor", sa.String(64), nullable=True),  # the last sku copied
    sa.Column("position", sa.BigInteger, nullable=False, default=0),  # items read (the offset)
    sa.Column("complete", sa.Boolean, nullable=False, default=False),
    sa.Column("updated_at", sa.DateTime, nullable=True),
)

outbox = outbox_table(metadata)

# Columns added after the first release: create_schema adds them to older databases.
ADDED_COLUMNS = {"items": ("version", "floor")}
