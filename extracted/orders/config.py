"""Settings of the orders service, read from the environment once at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from extracted.orders.adapters.db import DEFAULT_URL


@dataclass(frozen=True)
class Settings:
    """Every knob of the service; defaults make `make run` work with no configuration."""

    database_url: str = DEFAULT_URL
    inventory_url: str = "http://127.0.0.1:8102"
    legacy_url: str = "http://127.0.0.1:8000"
    http_timeout: float = 3.0  # whole exchange with a dependency, seconds
    connect_timeout: float = 1.0
    breaker_failures: int = 5
    breaker_reset_after: float = 10.0
    reconcile_interval: float = 30.0
    # A pending order older than this is a crash's leftover; far above a saga's duration.
    pending_grace: float = 30.0
    crash_after_reserve: bool = False
    relay_events: bool = True
    backfill_page: int = 500  # legacy orders per backfill page (the legacy's maximum)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        """Settings from ORDERS_* / INVENTORY_URL / LEGACY_URL variables."""
        d = cls()
        return cls(
            database_url=env.get("ORDERS_DATABASE_URL") or d.database_url,
            inventory_url=(env.get("INVENTORY_URL") or d.inventory_url).rstrip("/"),
            legacy_url=(env.get("LEGACY_URL") or d.legacy_url).rstrip("/"),
            http_timeout=float(env.get("ORDERS_HTTP_TIMEOUT") or d.http_timeout),
            connect_timeout=float(env.get("ORDERS_CONNECT_TIMEOUT") or d.connect_timeout),
            breaker_failures=int(env.get("ORDERS_BREAKER_FAILURES") or d.breaker_failures),
            breaker_reset_after=float(env.get("ORDERS_BREAKER_RESET") or d.breaker_reset_after),
            reconcile_interval=float(env.get("ORDERS_RECONCILE_INTERVAL") or d.reconcile_interval),
            pending_grace=float(env.get("ORDERS_PENDING_GRACE") or d.pending_grace),
            crash_after_reserve=env.get("ORDERS_CRASH_AFTER_RESERVE") == "1",
            relay_events=env.get("ORDERS_RELAY_EVENTS", "1") != "0",
            backfill_page=int(env.get("ORDERS_BACKFILL_PAGE") or d.backfill_page),
        )
