"""The extracted inventory service: items, reservations and restocks behind SPEC §3's HTTP contract.

Layers (cosmicpython), laid out like `extracted.orders`: `domain` (pure: the Item aggregate with
its per-sku version and the read copy's version rule, commands, the backfill rule, comparisons),
`service` (use cases in `handlers`, ports, the stock port among them), `adapters` (SQLAlchemy
repository/unit of work/outbox, the local and the legacy stock adapters, the HTTP reader),
`entrypoints` (aiohttp API `create_app`, request validation, the follower, the CLI), and
`bootstrap` (the one wiring place: `build_app`, the follower, the database). Error texts,
shared validation and the contract's shapes come from `extracted.contract`.

One stock authority (SPEC §3), set by `STOCK_AUTHORITY=inventory|legacy` (unset: legacy):

* inventory: stock writes change our tables; each change bumps the item's version and writes
  one `inventory.changed` outbox row in the same transaction.
* legacy: this service is a read copy. Stock writes are forwarded to the legacy's HTTP API and
  mirrored here at the version it answered; `sync --follow` applies the legacy's
  `inventory.changed` events by version.

Command line::

    python -m extracted.inventory [serve] [--host 127.0.0.1] [--port 8102]
    python -m extracted.inventory sync [--follow | --check [--settle 10s]]
    python -m extracted.inventory handoff --to inventory|legacy [--check]

Environment: `INVENTORY_DATABASE_URL` (default `sqlite:///var/inventory.db`), `STOCK_AUTHORITY`,
`LEGACY_URL` (default `http://127.0.0.1:8000`), `ORDERS_URL` (default `http://127.0.0.1:8101`,
`sync --check` only), and the event bus's `REDIS_URL` / `EVENTS_DB` (see
`extracted.events.bus_from_env`).
"""
