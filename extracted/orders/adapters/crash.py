"""A fault-injection decorator of InventoryPort, for the saga's crash test."""

from __future__ import annotations

import os

from extracted.orders.service.ports import InventoryPort, ItemInfo


class CrashAfterFirstReserve:
    """Kills the process (no clean-up at all) right after the first reservation succeeded.

    Enabled by ORDERS_CRASH_AFTER_RESERVE=1; it proves reconciliation releases what a crash
    between saga steps left reserved.
    """

    def __init__(self, inner: InventoryPort) -> None:
        self.inner = inner

    async def item(self, sku: str) -> ItemInfo | None:
        return await self.inner.item(sku)

    async def reserve(self, sku: str, order_id: int, qty: int) -> None:
        await self.inner.reserve(sku, order_id, qty)
        os._exit(1)

    async def release(self, sku: str, order_id: int) -> None:
        await self.inner.release(sku, order_id)
