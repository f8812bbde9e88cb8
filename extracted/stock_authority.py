"""`STOCK_AUTHORITY=inventory|legacy`: which side is the one writer of record for stock (SPEC §3).

Stock is items' `on_hand` and the reservations. The authority writes them in its own tables and
publishes `inventory.changed` events (its own records, versioned per item); the other side keeps
a read copy fed by those events and sends every stock write to the authority's HTTP API, failing
fast with 503 `dependency_unavailable` while the authority cannot be reached.

Unset means `legacy`: before a migration starts, the monolith owns its stock. The demo stack
(`make run`) sets `inventory`. Every process of one deployment must agree; a wrong value stops
the process at start-up rather than letting two writers decide availability.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

__all__ = ["AUTHORITIES", "ENV_VAR", "Authority", "stock_authority"]

Authority = Literal["inventory", "legacy"]
AUTHORITIES: tuple[Authority, ...] = ("inventory", "legacy")
ENV_VAR = "STOCK_AUTHORITY"


def stock_authority(env: Mapping[str, str] = os.environ) -> Authority:
    """The configured authority; raises ValueError naming the variable for anything else."""
    value = (env.get(ENV_VAR) or "legacy").strip().lower()
    if value == "inventory":
        return "inventory"
    if value == "legacy":
        return "legacy"
    raise ValueError(f"{ENV_VAR} must be 'inventory' or 'legacy', not {env.get(ENV_VAR)!r}")
