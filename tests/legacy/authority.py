"""An in-memory stock authority speaking the inventory service's write API (for the adapter tests).

It is the reference model of what the authority must decide: reservations never exceed on_hand,
repeats are idempotent, every accepted change bumps the sku's version, answered in
``X-Stock-Version``. ``down`` makes it unreachable; ``fail_after`` makes it go down after that many
more calls. The real inventory service is exercised by the migration chaos suite.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import httpx
import orjson


@dataclass
class StockModel:
    on_hand: dict[str, int]
    reservations: dict[str, dict[int, int]] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    down: bool = False
    fail_after: int | None = None
    lose_answers: bool = False  # the write happens, its answer never arrives (a read timeout)
    calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)

    def held(self, sku: str) -> dict[int, int]:
        return dict(self.reservations.get(sku, {}))

    def _bump(self, sku: str) -> int:
        self.versions[sku] = self.versions.get(sku, 0) + 1
        return self.versions[sku]

    def _handle(self, request: httpx.Request) -> httpx.Response:
        response = self._decide(request)
        if self.lose_answers:
            raise httpx.ReadTimeout("answer lost", request=request)
        return response

    def _decide(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.calls += 1
            if self.fail_after is not None:
                if self.fail_after <= 0:
                    self.down = True
                self.fail_after -= 1
            if self.down:
                raise httpx.ConnectError("authority down", request=request)
            parts = request.url.path.strip("/").split("/")  # api inventory SKU ...
            sku = parts[2]
            if sku not in self.on_hand:
                return _json(404, {"error": "not_found", "detail": f"no item {sku}"})
            held = self.reservations.setdefault(sku, {})
            if request.method == "POST" and parts[3] == "reservations":
                body = orjson.loads(request.content)
                order_id, qty = body["order_id"], body["qty"]
                answer = {"sku": sku, "order_id": order_id, "qty": qty}
                if order_id in held:
                    if held[order_id] != qty:
                        return _json(409, {"error": "reservation_conflict", "detail": "conflict"})
                    return _json(200, answer, self.versions.get(sku, 0))
                if self.on_hand[sku] - sum(held.values()) < qty:
                    detail = f"insufficient stock for {sku}"
                    return _json(409, {"error": "insufficient_stock", "detail": detail})
                held[order_id] = qty
                return _json(201, answer, self._bump(sku))
            if request.method == "DELETE":
                order_id = int(parts[4])
                version = self._bump(sku) if held.pop(order_id, None) else self.versions.get(sku, 0)
                return httpx.Response(204, headers={"X-Stock-Version": str(version)})
            if request.method == "POST" and parts[3] == "restock":
                self.on_hand[sku] += orjson.loads(request.content)["qty"]
                reserved = sum(held.values())
                item = {
                    "sku": sku,
                    "name": f"Item {sku}",
                    "price_cents": 1,
                    "on_hand": self.on_hand[sku],
                    "reserved": reserved,
                    "available": self.on_hand[sku] - reserved,
                }
                return _json(200, item, self._bump(sku))
            return _json(405, {"error": "method_not_allowed", "detail": "no"})


def _json(status: int, body: object, version: int | None = None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if version is not None:
        headers["X-Stock-Version"] = str(version)
    return httpx.Response(status, content=orjson.dumps(body), headers=headers)
