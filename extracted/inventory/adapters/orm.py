"""The inventory database's tables (SQLAlchemy Core), the outbox included."""

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
    _origin(),  # who last wrote on_hand (see extracted.inventory.domain.sync)
    sa.Column("updated_at", sa.DateTime, nullable=True),
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

# Tombstones of reservations this service released that the legacy may still show.
released_reservations = sa.Table(
    "released_reservations",
    metadata,
    sa.Column(
        "sku", sa.String(64), sa.ForeignKey("items.sku", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("order_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("released_at", sa.DateTime, nullable=False),
    _origin(),
)

outbox = outbox_table(metadata)
