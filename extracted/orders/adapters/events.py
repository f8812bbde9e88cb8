"""Bus envelopes -> domain changes: which events the orders consumer applies, and how.

The outgoing direction (domain events -> envelopes) is `SqlUnitOfWork.publish`.
"""

from __future__ import annotations

import calendar
import time

from extracted.events import ORDER_CANCELLED, ORDER_PLACED, Event
from extracted.events.schema import TIMESTAMP_FORMAT
from extracted.orders.domain.events import OrderChangedElsewhere
from extracted.orders.domain.idempotency import KeyRecord
from extracted.orders.domain.model import Origin, order_from_json

#: Order events of these origins are applied; ours ("orders") are skipped (no echo).
APPLIED_ORIGINS = frozenset({str(Origin.LEGACY)})


def order_change(event: Event) -> OrderChangedElsewhere | None:
    """The change an event carries for us, or None when we skip it (another type, our own).

    Raises KeyError/TypeError/ValueError for content we cannot apply.
    """
    if event.type not in (ORDER_PLACED, ORDER_CANCELLED) or event.origin not in APPLIED_ORIGINS:
        return None
    order = order_from_json(event.data["order"], Origin(event.origin))
    idem = event.data.get("idempotency")
    key = None
    if idem is not None:
        key = KeyRecord(str(idem["key"]), idem["request"], dict(idem["response"]))
    occurred = float(calendar.timegm(time.strptime(event.occurred_at, TIMESTAMP_FORMAT)))
    return OrderChangedElsewhere(order, key, occurred)
