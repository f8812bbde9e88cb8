"""The stock port's remote adapter: while the legacy is the stock authority, this service's stock
writes are the legacy's, made through its HTTP API (typed httpx client, timeouts, a breaker).

The legacy's answer goes back as it came (status, JSON body, `X-Stock-Version`); a successful
write is then mirrored into the read copy at that version (read-your-writes). When the legacy
cannot be reached the write fails fast with `DependencyUnavailable` and nothing changes here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from extracted.dependency import DependencyFailure
from extracted.inventory.adapters.breaker import DependencyBreaker
from extracted.inventory.service import read_copy
from extracted.inventory.service.ports import StockAnswer, UnitOfWorkFactory

log = logging.getLogger("extracted.inventory.legacy_stock")

NAME = "legacy"
VERSION_HEADER = "X-Stock-Version"


def _segment(value: str | int) -> str:
    return quote(str(value), safe="")


def _version(resp: httpx.Response) -> int | None:
    raw = resp.headers.get(VERSION_HEADER, "")
    return int(raw) if raw.isascii() and raw.isdigit() else None


class LegacyStock:
    """Implements the stock port by forwarding to the legacy, then mirroring what it confirmed."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        breaker: DependencyBreaker,
        uow_factory: UnitOfWorkFactory,
        prepare: Callable[[], None],
    ) -> None:
        self.client = client
        self.breaker = breaker
        self.uow_factory = uow_factory
        self.prepare = prepare

    async def reserve(self, sku: str, order_id: int, qty: int) -> StockAnswer:
        """Forward the reservation; mirror it when the legacy holds it (200/201)."""
        path = f"/api/inventory/{_segment(sku)}/reservations"
        answer = await self._forward("POST", path, {"order_id": order_id, "qty": qty})
        if answer.status in (200, 201) and answer.version is not None:
            v = answer.version
            await self._mirror(
                lambda: read_copy.confirm_reserve(sku, order_id, qty, v, self.uow_factory)
            )
        return answer

    async def release(self, sku: str, order_id: int) -> StockAnswer:
        """Forward the release; mirror it on 204."""
        path = f"/api/inventory/{_segment(sku)}/reservations/{order_id}"
        answer = await self._forward("DELETE", path, None)
        if answer.status == 204 and answer.version is not None:
            v = answer.version
            await self._mirror(
                lambda: read_copy.confirm_release(sku, order_id, v, self.uow_factory)
            )
        return answer

    async def restock(self, sku: str, qty: int) -> StockAnswer:
        """Forward the restock; mirror the on_hand the legacy answered on 200."""
        answer = await self._forward(
            "POST", f"/api/inventory/{_segment(sku)}/restock", {"qty": qty}
        )
        on_hand = _on_hand(answer.body)
        if answer.status == 200 and answer.version is not None and on_hand is not None:
            v = answer.version
            await self._mirror(lambda: read_copy.confirm_restock(sku, on_hand, v, self.uow_factory))
        return answer

    async def _forward(self, method: str, path: str, body: dict[str, Any] | None) -> StockAnswer:
        """One exchange through the breaker: transport errors, 5xx and non-JSON bodies count."""
        async with self.breaker.guard():
            try:
                resp = await self.client.request(method, path, json=body)
            except httpx.TransportError as exc:  # connect errors, timeouts, protocol errors
                raise DependencyFailure(f"{NAME}: {method} {path}: {exc!r}") from exc
            if resp.status_code >= 500:
                raise DependencyFailure(f"{NAME}: {method} {path} -> {resp.status_code}")
            content = resp.content or None
            if content is not None:
                try:
                    orjson.loads(content)
                except orjson.JSONDecodeError as exc:
                    raise DependencyFailure(f"{NAME}: {method} {path}: not JSON") from exc
        return StockAnswer(resp.status_code, content, _version(resp))

    async def _mirror(self, apply: Callable[[], bool]) -> None:
        def call() -> bool:
            self.prepare()
            return apply()

        try:
            await asyncio.to_thread(call)
        except Exception as exc:  # the write is the legacy's now; its event brings it here
            log.warning("could not mirror a confirmed stock write into the read copy: %s", exc)


def _on_hand(body: bytes | None) -> int | None:
    try:
        value = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None
    on_hand = value.get("on_hand") if isinstance(value, dict) else None
    return on_hand if isinstance(on_hand, int) and not isinstance(on_hand, bool) else None
