"""Values and JSON shapes the contract fixes beyond errors: timestamps, list pages, id ranges.

Copied on purpose from the legacy (`legacy_monolith/db.py`: `TS_FORMAT`, `ID_CEILING`).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

# Every timestamp in a body: UTC, second precision, `Z`.
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

# Orders the new services create get ids from here up; the legacy allocates below it.
NEW_SERVICES_ID_FLOOR = 1_000_000_000


def utc_stamp(epoch: float) -> str:
    """An epoch time in the contract's timestamp format."""
    return time.strftime(TIMESTAMP_FORMAT, time.gmtime(epoch))


def now_stamp() -> str:
    """Now in the contract's timestamp format."""
    return datetime.now(UTC).strftime(TIMESTAMP_FORMAT)


def list_body(items: list[Any], total: int) -> dict[str, Any]:
    """`{"items","total","generated_at"}`; generated_at is "now" (deliberately)."""
    return {"items": items, "total": total, "generated_at": now_stamp()}
