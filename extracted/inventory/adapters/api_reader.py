"""Typed httpx client of the legacy's inventory API (the sync's source; never its database)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import httpx

from extracted.inventory.domain.sync import LegacyItem

PAGE = 500  # the contract's largest `limit`


class LegacyError(Exception):
    """The legacy answered something the contract does not allow."""


class LegacyInventoryClient:
    """Reads items and reservations from the legacy, paginating with limit/offset."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        parallel: int = 4,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.parallel = parallel
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"), timeout=timeout, transport=transport
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> LegacyInventoryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def items(self) -> Iterator[LegacyItem]:
        """Every legacy item, each with all its reservations, in sku order.

        Reservation lists are fetched a few at a time: the copy is bound by round trips.
        """
        raws = list(self._paginate("/api/inventory"))
        with ThreadPoolExecutor(max_workers=self.parallel) as pool:
            yield from pool.map(self._with_reservations, raws)

    def _with_reservations(self, raw: Any) -> LegacyItem:
        sku = _field(raw, "sku", str)
        path = f"/api/inventory/{quote(sku, safe='')}/reservations"
        reservations = {
            _field(r, "order_id", int): _field(r, "qty", int) for r in self._paginate(path)
        }
        return LegacyItem(
            sku=sku,
            name=_field(raw, "name", str),
            price_cents=_field(raw, "price_cents", int),
            on_hand=_field(raw, "on_hand", int),
            reservations=reservations,
        )

    def _paginate(self, path: str) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            resp = self._client.get(path, params={"limit": PAGE, "offset": offset})
            if resp.status_code != 200:
                raise LegacyError(f"GET {path} answered {resp.status_code}: {resp.text[:200]}")
            try:
                body = resp.json()
            except ValueError as exc:
                raise LegacyError(f"GET {path} did not answer JSON: {exc}") from None
            page = body.get("items") if isinstance(body, dict) else None
            if not isinstance(page, list):
                raise LegacyError(f"GET {path} did not answer a list")
            yield from page
            offset += len(page)
            if not page or offset >= int(body.get("total", 0)):
                return


def _field(obj: Any, key: str, kind: type) -> Any:
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise LegacyError(f"legacy record lacks a valid {key!r}: {obj!r}")
    return value
