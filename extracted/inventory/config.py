"""Settings read from the environment (in one place; everything else gets them handed down)."""

from __future__ import annotations

import os
from collections.abc import Mapping

DEFAULT_LEGACY_URL = "http://127.0.0.1:8000"
DEFAULT_ORDERS_URL = "http://127.0.0.1:8101"


def legacy_url_from_env(env: Mapping[str, str] = os.environ) -> str:
    """`LEGACY_URL`: the legacy's HTTP API (backfill, checks, and the stock while it is the
    authority)."""
    return env.get("LEGACY_URL") or DEFAULT_LEGACY_URL


def orders_url_from_env(env: Mapping[str, str] = os.environ) -> str:
    """`ORDERS_URL`: the orders service's HTTP API (its orders, for `sync --check`)."""
    return env.get("ORDERS_URL") or DEFAULT_ORDERS_URL
