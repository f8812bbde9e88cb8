"""The legacy's stock port (branch by abstraction, SPEC §3 "One stock authority").

When the inventory service is the authority, every stock write of the legacy (a reservation, a
release, a restock, the reservations of an order it places) goes to the inventory service's HTTP
API through `RemoteStock`: a typed httpx client with timeouts and a pybreaker breaker. A refusal
comes back as the legacy's own `ShopError` (same texts as when it decides itself); an authority
that cannot be reached is 503 ``dependency_unavailable`` at once: availability is traded for
correctness, never the reverse. Each answer's ``X-Stock-Version`` is applied to the legacy's read
copy right away (read-your-writes), see `apply_own_write`.

When the legacy is the authority, `shop` writes its own tables and `RemoteStock` is not built.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pybreaker

from legacy_monolith import errors

__all__ = [
    "DEFAULT_INVENTORY_URL",
    "AuthorityUnavailable",
    "RemoteStock",
    "StockAnswer",
    "remote_stock_from_env",
]

DEFAULT_INVENTORY_URL = "http://127.0.0.1:8102"
AUTHORITY = "inventory"
VERSION_HEADER = "X-Stock-Version"


class _AuthorityFailure(Exception):
    """The authority itself failed (connect error, timeout, 5xx): what the breaker counts."""

    def __init__(self, message: str, *, maybe_done: bool) -> None:
        super().__init__(message)
        self.maybe_done = maybe_done


class AuthorityUnavailable(errors.ShopError):
    """503 ``dependency_unavailable`` from the stock port.

    `maybe_done` is False when the authority certainly did nothing (the connection was refused,
    or the breaker was open and no request left), True when the write may have happened there
    (a timeout or a lost answer after the request was sent, a 5xx): a caller that must not
    leave a half-applied change records its intent first and lets reconciliation finish it.
    """

    def __init__(self, *, maybe_done: bool) -> None:
        base = errors.dependency_unavailable(AUTHORITY)
        super().__init__(base.status, base.code, base.detail)
        self.maybe_done = maybe_done


@dataclass(frozen=True)
class StockAnswer:
    """A successful write at the authority: its status, JSON body and the item's new version."""

    status: int
    body: Any
    version: int


def _not_authority_failure(exc: BaseException) -> bool:
    return not isinstance(exc, _AuthorityFailure)


class RemoteStock:
    """Stock writes at the inventory service (thread-safe: gunicorn runs threads per worker)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 3.0,
        connect_timeout: float = 1.0,
        failures: int = 5,
        reset_after: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            transport=transport,
        )
        self._breaker = pybreaker.CircuitBreaker(
            fail_max=failures,
            reset_timeout=reset_after,
            name=AUTHORITY,
            exclude=[_not_authority_failure],
        )
        self._trial = threading.Lock()

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    # --- the port ---------------------------------------------------------------------------

    def reserve(self, sku: str, order_id: int, qty: int) -> StockAnswer:
        """Reserve at the authority: 201 new, 200 repeat; raises the legacy's ShopError."""
        return self._write("POST", f"{_item(sku)}/reservations", {"order_id": order_id, "qty": qty})

    def release(self, sku: str, order_id: int) -> StockAnswer:
        """Release at the authority (204, also when nothing was held)."""
        return self._write("DELETE", f"{_item(sku)}/reservations/{order_id}", None)

    def restock(self, sku: str, qty: int) -> StockAnswer:
        """Restock at the authority: 200 item."""
        return self._write("POST", f"{_item(sku)}/restock", {"qty": qty})

    # --- one exchange -------------------------------------------------------------------------

    def _write(self, method: str, path: str, body: dict[str, int] | None) -> StockAnswer:
        half_open = self._breaker.current_state != pybreaker.STATE_CLOSED
        # Half-open admits one trial at a time, not every concurrent request.
        if half_open and not self._trial.acquire(blocking=False):
            raise AuthorityUnavailable(maybe_done=False)
        try:
            with self._breaker.calling():
                response = self._exchange(method, path, body)
        except pybreaker.CircuitBreakerError:
            raise AuthorityUnavailable(maybe_done=False) from None
        except _AuthorityFailure as exc:
            raise AuthorityUnavailable(maybe_done=exc.maybe_done) from None
        finally:
            if half_open:
                self._trial.release()
        return _answer(response)

    def _exchange(self, method: str, path: str, body: dict[str, int] | None) -> httpx.Response:
        try:
            response = self._client.request(method, path, json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise _AuthorityFailure(str(exc), maybe_done=False) from exc
        except httpx.HTTPError as exc:
            raise _AuthorityFailure(str(exc), maybe_done=True) from exc
        if response.status_code >= 500:
            message = f"{method} {path} answered {response.status_code}"
            raise _AuthorityFailure(message, maybe_done=True)
        return response


def _item(sku: str) -> str:
    return f"/api/inventory/{quote(sku, safe='')}"


def _answer(response: httpx.Response) -> StockAnswer:
    """A 2xx as a StockAnswer; a refusal as the legacy's own error (same code, same text)."""
    status = response.status_code
    try:
        body = response.json() if response.content else None
    except ValueError:
        body = None
    if 200 <= status < 300:
        raw = response.headers.get(VERSION_HEADER, "")
        if not raw.isdigit():
            # Without a version the read copy cannot be kept ordered: a broken authority, which
            # did make the write.
            raise AuthorityUnavailable(maybe_done=True)
        return StockAnswer(status, body, int(raw))
    code = body.get("error") if isinstance(body, dict) else None
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(code, str) and isinstance(detail, str):
        # The inventory service answers the legacy's texts byte for byte (SPEC §3).
        raise errors.ShopError(status, code, detail)
    raise AuthorityUnavailable(maybe_done=False)


def remote_stock_from_env() -> RemoteStock:
    """`RemoteStock` at ``INVENTORY_URL`` (default http://127.0.0.1:8102)."""
    return RemoteStock(os.environ.get("INVENTORY_URL") or DEFAULT_INVENTORY_URL)
