"""Typed, synchronous httpx reader of a shop HTTP API (the legacy's, or the orders service's):
the backfill's and the checks' source. Never anyone's database."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import httpx

from extracted.inventory.domain.model import ItemState

PAGE = 500  # the contract's largest `limit`


class UnexpectedAnswer(Exception):
    """The API answered something the contract does not allow."""


class ApiReader:
    """Reads items (with their reservations) and orders, paginating with limit/offset."""

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

    def __enter__(self) -> ApiReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def item_page(self, offset: int) -> tuple[list[ItemState], int]:
        """Up to PAGE items by sku from `offset`, each with all its reservations; and the total.

        Reservation lists are fetched a few at a time: the copy is bound by round trips.
        """
        body = self._get("/api/inventory", offset)
        raws, total = body["items"], _field(body, "total", int)
        with ThreadPoolExecutor(max_workers=self.parallel) as pool:
            return list(pool.map(self._with_reservations, raws)), total

    def items(self) -> Iterator[ItemState]:
        """Every item with its reservations, in sku order."""
        offset = 0
        while True:
            states, total = self.item_page(offset)
            yield from states
            offset += len(states)
            if not states or offset >= total:
                return

    def orders(self) -> list[dict[str, Any]]:
        """Every order, as the API renders them, in id order."""
        return list(self._paginate("/api/orders"))

    def _with_reservations(self, raw: Any) -> ItemState:
        sku = _field(raw, "sku", str)
        path = f"/api/inventory/{quote(sku, safe='')}/reservations"
        reservations = {
            _field(r, "order_id", int): _field(r, "qty", int) for r in self._paginate(path)
        }
        return ItemState(
            sku=sku,
            name=_field(raw, "name", str),
            price_cents=_field(raw, "price_cents", int),
            on_hand=_field(raw, "on_hand", int),
            reservations=reservations,
        )

    def _get(self, path: str, offset: int) -> dict[str, Any]:
        resp = self._client.get(path, params={"limit": PAGE, "offset": offset})
        if resp.status_code != 200:
            raise UnexpectedAnswer(f"GET {path} answered {resp.status_code}: {resp.text[:200]}")
        try:
            body = resp.json()
        except ValueError as exc:
            raise UnexpectedAnswer(f"GET {path} did not answer JSON: {exc}") from None
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise UnexpectedAnswer(f"GET {path} did not answer a list")
        return body

    def _paginate(self, path: str) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            body = self._get(path, offset)
            page = body["items"]
            yield from page
            offset += len(page)
            if not page or offset >= _field(body, "total", int):
                return


def _field(obj: Any, key: str, kind: type) -> Any:
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise UnexpectedAnswer(f"record lacks a valid {key!r}: {str(obj)[:200]}")
    return value
