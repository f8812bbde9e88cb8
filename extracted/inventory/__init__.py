"""The extracted inventory service: items, reservations and restocks behind SPEC §3's HTTP contract.

Layers (cosmicpython): `domain` (pure rules, the sync merge rule), `service` (use cases and
ports), `adapters` (SQLAlchemy repository/unit of work/outbox, the legacy's HTTP API),
`entrypoints` (aiohttp API `create_app`, the CLI).

Command line::

    python -m extracted.inventory [serve] [--host 127.0.0.1] [--port 8102]
    python -m extracted.inventory sync [--follow] [--interval 2] [--check]

Environment: `INVENTORY_DATABASE_URL` (default `sqlite:///var/inventory.db`), `LEGACY_URL`
(default `http://127.0.0.1:8000`, the sync's source), and the event bus's `REDIS_URL` /
`EVENTS_DB` (see `extracted.events.bus_from_env`).
"""
