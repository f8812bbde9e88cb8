"""Client and assertions shared by the contract tests (SPEC §3 and the shop conventions)."""

from __future__ import annotations

import itertools
import json as jsonlib
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.contract.targets import Target

TIMESTAMP_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
SEEDED_SKUS = [f"SKU-{n:04d}" for n in range(1, 201)]
# Validation tests send bad writes to this sku and check that nothing changed; it is
# never claimed, so a wrongly accepted write shows up in that one test only.
VALIDATION_SKU = SEEDED_SKUS[-1]
_CLAIMABLE_SKUS = SEEDED_SKUS[:-10]
SEEDED_CUSTOMERS = 50
SEEDED_ORDERS = 1000
# Fits every database's 32-bit integer and is never allocated: the legacy allocates
# from 1 up, the new services from 1_000_000_000 up.
UNKNOWN_ID = 999_999_999
UNKNOWN_SKU = "SKU-9999"
# Reservations made directly through the inventory API use order ids from this range,
# which no implementation allocates, so they never collide with real orders.
FAKE_ORDER_BASE = 900_000_000

# Key lists in the exact order the shop conventions fix (SPEC §3 field lists).
CUSTOMER_KEYS = ["id", "name", "email", "created_at"]
ITEM_KEYS = ["sku", "name", "price_cents", "on_hand", "reserved", "available"]
RESERVATION_KEYS = ["sku", "order_id", "qty"]
ORDER_KEYS = ["id", "customer_id", "status", "items", "total_cents", "placed_at"]
LINE_KEYS = ["sku", "qty", "price_cents"]
LIST_KEYS = ["items", "total", "generated_at"]
ERROR_KEYS = ["error", "detail"]

_UNSET: Any = object()


class Shop:
    """An HTTP client bound to one running target, plus per-target allocators.

    Paths are routed by resource: `/api/orders/...` goes to `url_for("orders")`.
    Allocators hand every test its own skus and fake order ids, so tests never
    depend on each other's side effects (each target has one Shop per process).
    """

    def __init__(self, target: Target, client: httpx.Client) -> None:
        self.target = target
        self.client = client
        self._skus: Iterator[str] = iter(_CLAIMABLE_SKUS)
        self._fake_orders = itertools.count(FAKE_ORDER_BASE + 1)
        self._customers = itertools.cycle(range(1, SEEDED_CUSTOMERS + 1))

    @property
    def name(self) -> str:
        return self.target.name

    def supports(self, resource: str) -> bool:
        """Whether the target serves `resource`."""
        return self.target.supports(resource)

    def require(self, resource: str) -> None:
        """Skip the calling test when the target does not serve `resource`."""
        if not self.supports(resource):
            pytest.skip(f"{self.name} does not serve {resource}")

    def url(self, path: str, resource: str | None = None) -> str:
        """Absolute URL of `path` on the server for `resource` (default: from the path)."""
        return self.target.url_for(resource or resource_of(path)) + path

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = _UNSET,
        content: bytes | str | None = None,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        resource: str | None = None,
    ) -> httpx.Response:
        """Send one request; `json` is serialised as-is (any JSON value, null included)."""
        all_headers = dict(headers or {})
        if json is not _UNSET:
            content = json_bytes(json)
            all_headers.setdefault("Content-Type", "application/json")
        return self.client.request(
            method, self.url(path, resource), content=content, params=params, headers=all_headers
        )

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def post_raw(self, path: str, content: bytes | str, **kwargs: Any) -> httpx.Response:
        """POST `content` verbatim, declared as JSON (for malformed bodies)."""
        headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
        return self.request("POST", path, content=content, headers=headers, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)

    # -- allocators ---------------------------------------------------------

    def claim_skus(self, count: int = 1, min_available: int = 20) -> list[str]:
        """`count` seeded skus no other test of this process touches, each with stock.

        Restocks a claimed sku whose availability is below `min_available`.
        """
        claimed: list[str] = []
        for _ in range(count):
            sku = next(self._skus, None)
            if sku is None:
                pytest.fail("the contract suite ran out of seeded skus; claim fewer per test")
            item = self.item(sku)
            if item["available"] < min_available:
                r = self.post(
                    f"/api/inventory/{sku}/restock", json={"qty": min_available - item["available"]}
                )
                expect_json(r, 200)
            claimed.append(sku)
        return claimed

    def fake_order_id(self) -> int:
        """An order id for direct reservations, unique in this process, never a real order."""
        return next(self._fake_orders)

    def customer_id(self) -> int:
        """A seeded customer id (tests only add orders to seeded customers)."""
        return next(self._customers)

    # -- reads --------------------------------------------------------------

    def item(self, sku: str) -> dict[str, Any]:
        """GET one inventory item, asserting 200."""
        return expect_json(self.get(f"/api/inventory/{sku}"), 200)

    def reservations(self, sku: str) -> list[dict[str, Any]]:
        """Every reservation of `sku` (one page of 500, asserted complete)."""
        body = expect_json(
            self.get(f"/api/inventory/{sku}/reservations", params={"limit": 500}), 200
        )
        assert body["total"] == len(body["items"]), "more than 500 reservations for one sku"
        return body["items"]

    def order(self, order_id: int) -> dict[str, Any]:
        """GET one order, asserting 200."""
        return expect_json(self.get(f"/api/orders/{order_id}"), 200)

    def orders_total(self) -> int:
        """The `total` of GET /api/orders."""
        return expect_json(self.get("/api/orders", params={"limit": 1}), 200)["total"]

    def all_pages(self, path: str, params: Mapping[str, str | int] | None = None) -> list[Any]:
        """Every item of a list, fetched 500 at a time."""
        items: list[Any] = []
        while True:
            page_params = {**(params or {}), "limit": 500, "offset": len(items)}
            body = expect_json(self.get(path, params=page_params), 200)
            items.extend(body["items"])
            if not body["items"] or len(items) >= body["total"]:
                return items


def json_bytes(value: Any) -> bytes:
    """Compact JSON bytes for a request body."""
    return jsonlib.dumps(value, separators=(",", ":")).encode()


def resource_of(path: str) -> str:
    """The resource a `/api/<resource>...` path belongs to."""
    parts = path.split("?")[0].split("/")
    if len(parts) < 3 or parts[1] != "api":
        raise ValueError(f"cannot tell the resource of {path!r}; pass resource=")
    return parts[2]


# -- assertions ---------------------------------------------------------------


def describe(resp: httpx.Response) -> str:
    """One line naming the request and the answer, for assertion messages."""
    return f"{resp.request.method} {resp.request.url} -> {resp.status_code} {resp.text[:500]!r}"


def expect_json(resp: httpx.Response, status: int) -> Any:
    """Assert the status and a JSON content type, and return the parsed body."""
    assert resp.status_code == status, describe(resp)
    ctype = resp.headers.get("content-type", "")
    assert ctype.split(";")[0].strip() == "application/json", (
        f"content-type {ctype!r}: {describe(resp)}"
    )
    return resp.json()


def expect_error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert an error answer: status, exactly {error, detail}, the code, a non-empty detail."""
    body = expect_json(resp, status)
    assert isinstance(body, dict), describe(resp)
    assert set(body) == set(ERROR_KEYS), describe(resp)
    assert body["error"] == code, describe(resp)
    assert isinstance(body["detail"], str) and body["detail"].strip(), describe(resp)
    return body


def is_int(value: Any) -> bool:
    """A JSON integer: not a bool, not a float."""
    return type(value) is int


def is_id(value: Any) -> bool:
    """A positive integer id."""
    return is_int(value) and value >= 1


def is_timestamp(value: Any) -> bool:
    """A UTC timestamp with second precision and a `Z`."""
    if not isinstance(value, str) or not TIMESTAMP_RE.match(value):
        return False
    try:
        parse_timestamp(value)
    except ValueError:
        return False
    return True


def parse_timestamp(value: str) -> datetime:
    """Parse `%Y-%m-%dT%H:%M:%SZ` as an aware UTC datetime."""
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def assert_recent(value: str, within_s: float = 600.0) -> None:
    """`value` is a timestamp close to this machine's clock (servers run here)."""
    assert is_timestamp(value), value
    delta = abs((datetime.now(UTC) - parse_timestamp(value)).total_seconds())
    assert delta <= within_s, f"{value} is {delta:.0f}s away from now"


def assert_keys(obj: Any, keys: list[str], what: str) -> None:
    """`obj` is an object with exactly `keys` (as a set; order is checked in test_format)."""
    assert isinstance(obj, dict), f"{what} is not an object: {obj!r}"
    assert set(obj) == set(keys), f"{what} keys {sorted(obj)} != {sorted(keys)}: {obj!r}"


def assert_customer(obj: Any) -> None:
    """A customer object (SPEC §3)."""
    assert_keys(obj, CUSTOMER_KEYS, "customer")
    assert is_id(obj["id"]), obj
    assert isinstance(obj["name"], str) and obj["name"], obj
    assert isinstance(obj["email"], str) and obj["email"], obj
    assert is_timestamp(obj["created_at"]), obj


def assert_item(obj: Any) -> None:
    """An inventory item object: integer money and counts, available = on_hand - reserved."""
    assert_keys(obj, ITEM_KEYS, "item")
    assert isinstance(obj["sku"], str) and obj["sku"], obj
    assert isinstance(obj["name"], str) and obj["name"], obj
    for key in ("price_cents", "on_hand", "reserved", "available"):
        assert is_int(obj[key]), f"{key} is not an integer: {obj!r}"
    assert obj["price_cents"] >= 0 and obj["on_hand"] >= 0 and obj["reserved"] >= 0, obj
    assert obj["available"] == obj["on_hand"] - obj["reserved"], obj


def assert_reservation(obj: Any) -> None:
    """A reservation object."""
    assert_keys(obj, RESERVATION_KEYS, "reservation")
    assert isinstance(obj["sku"], str) and obj["sku"], obj
    assert is_id(obj["order_id"]), obj
    assert is_id(obj["qty"]), obj


def assert_order(obj: Any) -> None:
    """An order object: lines, integer money, total = sum(qty * price_cents)."""
    assert_keys(obj, ORDER_KEYS, "order")
    assert is_id(obj["id"]), obj
    assert is_id(obj["customer_id"]), obj
    assert obj["status"] in ("placed", "cancelled"), obj
    assert isinstance(obj["items"], list) and obj["items"], obj
    for line in obj["items"]:
        assert_keys(line, LINE_KEYS, "order line")
        assert isinstance(line["sku"], str) and line["sku"], obj
        assert is_id(line["qty"]), obj
        assert is_int(line["price_cents"]) and line["price_cents"] >= 0, obj
    skus = [line["sku"] for line in obj["items"]]
    assert len(skus) == len(set(skus)), f"a sku twice in {obj!r}"
    assert is_int(obj["total_cents"]), obj
    assert obj["total_cents"] == sum(li["qty"] * li["price_cents"] for li in obj["items"]), obj
    assert is_timestamp(obj["placed_at"]), obj


def assert_list(body: Any, check: Callable[[Any], None]) -> None:
    """A list answer: exactly {items, total, generated_at}, each item checked by `check`."""
    assert_keys(body, LIST_KEYS, "list")
    assert isinstance(body["items"], list), body
    assert is_int(body["total"]) and body["total"] >= len(body["items"]), body
    assert is_timestamp(body["generated_at"]), body
    for obj in body["items"]:
        check(obj)


def lines_by_sku(order: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """An order's lines keyed by sku (line order is not part of the contract)."""
    return {line["sku"]: line for line in order["items"]}
