"""The guarded httpx exchange shared by the inventory and customers clients."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from extracted.dependency import DependencyFailure
from extracted.orders.adapters.breaker import DependencyBreaker


def segment(value: str | int) -> str:
    """A value quoted as one path segment (a sku may hold any character)."""
    return quote(str(value), safe="")


async def exchange(
    client: httpx.AsyncClient,
    breaker: DependencyBreaker,
    method: str,
    path: str,
    *,
    json: Any = None,
) -> httpx.Response:
    """One request through the breaker: transport errors and 5xx count as failures."""
    async with breaker.guard():
        try:
            resp = await client.request(method, path, json=json)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # never reached it
            raise DependencyFailure(f"{breaker.name}: {exc!r}", sent=False) from exc
        except httpx.TransportError as exc:  # read timeouts, protocol errors: maybe done
            raise DependencyFailure(f"{breaker.name}: {exc!r}") from exc
        if resp.status_code >= 500:
            raise DependencyFailure(f"{breaker.name}: {method} {path} -> {resp.status_code}")
    return resp


def error_code(resp: httpx.Response) -> str | None:
    """The `error` code of a JSON error body, or None."""
    try:
        body = resp.json()
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) else None
