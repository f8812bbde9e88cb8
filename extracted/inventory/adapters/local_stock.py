"""The stock port's local adapter: this service is the stock authority and writes its own tables."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import orjson

from extracted.inventory.domain.commands import Release, Reserve, Restock
from extracted.inventory.service import handlers
from extracted.inventory.service.ports import StockAnswer, UnitOfWorkFactory
from extracted.inventory.service.views import item_json, reservation_json

_T = TypeVar("_T")


class LocalStock:
    """Runs the authority's use cases in worker threads (SQLAlchemy blocks); business refusals
    raise the domain's errors, which the API maps to their answers."""

    def __init__(self, uow_factory: UnitOfWorkFactory, prepare: Callable[[], None]) -> None:
        self.uow_factory = uow_factory
        self.prepare = prepare  # makes the tables first if start-up could not

    async def _run(self, fn: Callable[[], _T]) -> _T:
        def call() -> _T:
            self.prepare()
            return fn()

        return await asyncio.to_thread(call)

    async def reserve(self, sku: str, order_id: int, qty: int) -> StockAnswer:
        """201 new reservation, 200 repeat."""
        cmd = Reserve(sku, order_id, qty)
        result = await self._run(lambda: handlers.reserve(cmd, self.uow_factory))
        body = orjson.dumps(reservation_json(result.reservation))
        return StockAnswer(201 if result.created else 200, body, result.version)

    async def release(self, sku: str, order_id: int) -> StockAnswer:
        """204, also when nothing was held (with the current version)."""
        cmd = Release(sku, order_id)
        result = await self._run(lambda: handlers.release(cmd, self.uow_factory))
        return StockAnswer(204, None, result.version)

    async def restock(self, sku: str, qty: int) -> StockAnswer:
        """200 item."""
        cmd = Restock(sku, qty)
        item = await self._run(lambda: handlers.restock(cmd, self.uow_factory))
        return StockAnswer(200, orjson.dumps(item_json(item)), item.version)
