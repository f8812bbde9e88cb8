"""Reconciliation: release the stock of orders a crash left between saga steps."""

from __future__ import annotations

import asyncio
import logging
import time

from extracted.orders.domain.model import OrderStatus
from extracted.orders.service.handlers import Clock, abandon
from extracted.orders.service.ports import InventoryPort
from extracted.orders.service.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


async def reconcile(
    uow: UnitOfWork, inventory: InventoryPort, *, older_than: float, clock: Clock = time.time
) -> int:
    """Release and fail every pending/releasing order older than `older_than` seconds.

    The age guard leaves alone sagas still running in this or another replica; a saga that
    finds its order claimed here answers 503 instead of marking it placed. Returns how many
    orders were fully released.
    """
    cutoff = clock() - older_than

    def tx() -> list:
        with uow:
            return uow.orders.stale([OrderStatus.PENDING, OrderStatus.RELEASING], cutoff)

    stale = await asyncio.to_thread(tx)
    released = 0
    for order in stale:
        if await abandon(order, uow, inventory):
            released += 1
            log.info("reconciled order %s: reservations released, marked failed", order.id)
    return released
