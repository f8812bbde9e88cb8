"""Table definitions of the orders database (SQLAlchemy Core), the outbox included."""

from __future__ import annotations

import sqlalchemy as sa

from extracted.events import outbox_table

metadata = sa.MetaData()

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("customer_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("placed_at", sa.String(20), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),  # epoch seconds, for reconciliation
    sa.Column("origin", sa.String(16), nullable=False),
    sa.Index("ix_orders_status_created", "status", "created_at"),
)

order_lines = sa.Table(
    "order_lines",
    metadata,
    sa.Column(
        "order_id",
        sa.BigInteger,
        sa.ForeignKey("orders.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("line_no", sa.Integer, primary_key=True),  # keeps the customer's line order
    sa.Column("sku", sa.String(64), nullable=False),
    sa.Column("qty", sa.Integer, nullable=False),
    sa.Column("price_cents", sa.BigInteger, nullable=False),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("request", sa.Text, nullable=False),  # the request body's JSON
    sa.Column("response", sa.Text, nullable=False),  # the 201 answer's JSON
    sa.Column("created_at", sa.Float, nullable=False, index=True),
)

outbox = outbox_table(metadata)


def create_tables(engine: sa.Engine) -> None:
    """Create every table that does not exist yet (no migrations tool, by design)."""
    metadata.create_all(engine)
