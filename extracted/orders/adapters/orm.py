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
    # The order placed under the key, so its cancel event can carry the key too.
    sa.Column("order_id", sa.BigInteger, nullable=True, index=True),
)

# Progress of the resumable backfill from the legacy's HTTP API (one row per copy job).
sync_state = sa.Table(
    "sync_state",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("cursor", sa.BigInteger, nullable=False),  # legacy orders read so far (offset)
    sa.Column("complete", sa.Boolean, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# Cancels in progress: written before the first release, removed with the cancelled status,
# so a crash or a failure half-way is finished by reconciliation instead of leaving a placed
# order with some of its stock released.
cancel_requests = sa.Table(
    "cancel_requests",
    metadata,
    sa.Column("order_id", sa.BigInteger, primary_key=True),
    sa.Column("requested_at", sa.Float, nullable=False, index=True),
)

outbox = outbox_table(metadata)

# Columns added after a table first shipped: (table, column, type DDL), added when missing.
_ADDED_COLUMNS = ((idempotency_keys, "order_id", "BIGINT"),)


def create_tables(engine: sa.Engine) -> None:
    """Create every table that does not exist yet (no migrations tool, by design).

    Columns added to a table since it first shipped are added to existing databases too.
    Safe when several processes start at once on a fresh database (the loser retries).
    """
    for attempt in range(3):
        try:
            _create(engine)
            return
        except sa.exc.DBAPIError:
            # Another process created the same table or column a moment earlier.
            if attempt == 2:
                raise


def _create(engine: sa.Engine) -> None:
    metadata.create_all(engine)
    inspector = sa.inspect(engine)
    for table, column, ddl in _ADDED_COLUMNS:
        if column not in {c["name"] for c in inspector.get_columns(table.name)}:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {column} {ddl}")
                conn.exec_driver_sql(
                    f"CREATE INDEX IF NOT EXISTS ix_{table.name}_{column} "
                    f"ON {table.name} ({column})"
                )
