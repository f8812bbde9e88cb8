"""Shop events: the versioned envelope, the transactional outbox and the event bus adapters.

`from extracted.events import new_event, ORDER_PLACED, outbox_table, add_to_outbox, OutboxRelay,
bus_from_env` is all a service needs; consumers read `Delivery`s and ack them after processing.
"""

from extracted.events.bus import Delivery, EventBus, RedisStreamBus, SqliteLogBus, bus_from_env
from extracted.events.outbox import OutboxRelay, add_to_outbox, outbox_table
from extracted.events.schema import (
    EVENT_TYPES,
    INVENTORY_CHANGED,
    ORDER_CANCELLED,
    ORDER_PLACED,
    ORDER_STATUS_RANK,
    Event,
    inventory_changed,
    new_event,
    order_event,
    utc_now,
    validate_data,
)

__all__ = [
    "EVENT_TYPES",
    "INVENTORY_CHANGED",
    "ORDER_CANCELLED",
    "ORDER_PLACED",
    "ORDER_STATUS_RANK",
    "Delivery",
    "Event",
    "EventBus",
    "OutboxRelay",
    "RedisStreamBus",
    "SqliteLogBus",
    "add_to_outbox",
    "bus_from_env",
    "inventory_changed",
    "new_event",
    "order_event",
    "outbox_table",
    "utc_now",
    "validate_data",
]
