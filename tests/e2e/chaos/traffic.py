"""Mixed writes on both sides of the migration, every answer written down in a `Ledger`.

Sides: "gateway" (/api/orders -> the orders service, fallback legacy; /api/inventory writes ->
the inventory service, fallback legacy) and "legacy" (the monolith directly, as traffic that no
route claims yet). Accepted answers are 201 (orders, reservations) and 200 (cancels); 409, 502,
503 and 504 are refusals; a connection dropped by a killed process is an unknown outcome. Any
other status, and any request that outlives its timeout (a hang), is a failure.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

NEW_ID_BASE = 1_000_000_000
# Reservations made without an order (released again by the test) use ids no side allocates:
# the legacy allocates below 1e9 and above every reserved id there; the orders service counts up
# from 1e9.
FAKE_ORDER_BASE = 1_900_000_000
TIMEOUT = httpx.Timeout(20.0, connect=3.0)
REFUSED = {409, 502, 503, 504}
# Statuses that leave an order's outcome unknown: the upstream died mid-request.
UNKNOWN = {502, 504}
SIDES = ("gateway", "legacy")


def other(side: str) -> str:
    """The other side."""
    return "legacy" if side == "gateway" else "gateway"


def signature(customer_id: int, items: list[dict[str, Any]]) -> tuple:
    """What identifies a keyed order's body among every order of the run."""
    return (customer_id, tuple(sorted((i["sku"], i["qty"]) for i in items)))


@dataclass
class KeyRecord:
    """One Idempotency-Key: its body and every answer it got, from either side."""

    key: str
    customer_id: int
    items: list[dict[str, Any]]
    first_side: str
    answers: list[tuple[str, int, int | None]] = field(default_factory=list)
    first_201: dict[str, Any] | None = None
    bodies: list[dict[str, Any]] = field(default_factory=list)  # every 201 body

    @property
    def body(self) -> dict[str, Any]:
        return {"customer_id": self.customer_id, "items": self.items}

    @property
    def ids(self) -> set[int]:
        return {oid for _, status, oid in self.answers if status == 201 and oid is not None}


@dataclass
class Ledger:
    """Everything the clients sent and got back (thread-safe)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    accepted: dict[int, dict[str, Any]] = field(default_factory=dict)  # order id -> first 201 body
    accepted_side: dict[int, str] = field(default_factory=dict)
    # What the cancel clients pick from. A keyed order joins only after its repeat on the other
    # side: cancelling it through the gateway earlier would let the orders service read-repair it
    # from the legacy (GET of one id) without its key, and the repeat would then place a second.
    cancellable_ids: list[int] = field(default_factory=list)
    cancel_ok: dict[int, int] = field(default_factory=dict)  # order id -> accepted cancels
    cancel_tried: set[int] = field(default_factory=set)
    keys: dict[str, KeyRecord] = field(default_factory=dict)
    fake_reservations: set[tuple[str, int]] = field(default_factory=set)
    released: set[tuple[str, int]] = field(default_factory=set)
    counts: Counter = field(default_factory=Counter)
    # order id -> what clients did to it and what they got back, for failure messages
    history: dict[int, list[str]] = field(default_factory=dict)
    t0: float = field(default_factory=time.monotonic)
    unknown_places: int = 0
    failures: list[str] = field(default_factory=list)

    def count(self, what: str, n: int = 1) -> None:
        with self.lock:
            self.counts[what] += n

    def note(self, order_id: int, what: str) -> None:
        with self.lock:
            line = f"{time.monotonic() - self.t0:6.1f}s {what}"
            self.history.setdefault(order_id, []).append(line)

    def fail(self, what: str) -> None:
        with self.lock:
            self.failures.append(what)

    def accept(self, side: str, body: dict[str, Any], cancellable: bool) -> None:
        with self.lock:
            oid = int(body["id"])
            if oid not in self.accepted:
                self.accepted[oid] = body
                self.accepted_side[oid] = side
                if cancellable:
                    self.cancellable_ids.append(oid)

    def may_cancel(self, order_ids: set[int]) -> None:
        with self.lock:
            self.cancellable_ids.extend(sorted(order_ids - set(self.cancellable_ids)))

    def cancellable(self, rng: random.Random) -> int | None:
        with self.lock:
            return rng.choice(self.cancellable_ids) if self.cancellable_ids else None

    @property
    def refused(self) -> int:
        return sum(n for k, n in self.counts.items() if k.startswith("refused"))


@dataclass
class Plan:
    """What the traffic may touch: contended skus (one-unit orders), tag skus for keyed bodies."""

    contended: list[str]
    tags: list[str]
    plain_customers: range = range(1, 26)
    keyed_customers: range = range(26, 51)


class Driver:
    """Client threads against both sides, until `stop` is set or their action budget is spent."""

    def __init__(
        self,
        urls: dict[str, str],
        plan: Plan,
        ledger: Ledger,
        *,
        seed: int = 9,
        workers: int = 4,
        budget: int = 3000,
        pace: float = 0.01,
        max_keys: int = 150,
    ) -> None:
        self.urls = urls
        self.plan = plan
        self.ledger = ledger
        self.seed = seed
        self.workers = workers
        self.budget = budget
        self.pace = pace
        self.max_keys = max_keys
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self._key_seq = itertools.count()
        self._fake_seq = itertools.count(FAKE_ORDER_BASE)
        self._due: list[tuple[float, float, str, str]] = []  # (when, born, key, side) repeats
        self._due_lock = threading.Lock()

    # --- HTTP with the ledger's vocabulary ------------------------------------------------------

    def request(
        self, client: httpx.Client, op: str, side: str, method: str, path: str, **kw: Any
    ) -> httpx.Response | None:
        """One request; None when the connection broke (unknown outcome). A timeout is a failure."""
        try:
            return client.request(method, self.urls[side] + path, timeout=TIMEOUT, **kw)
        except httpx.TimeoutException as exc:
            self.ledger.fail(f"HANG {op} via {side}: {method} {path}: {exc!r}")
        except httpx.TransportError as exc:
            self.ledger.count(f"refused:{op}:{side}:{type(exc).__name__}")
        return None

    @staticmethod
    def via(side: str, r: httpx.Response) -> str:
        """Who answered: "legacy", or "gateway>orders" / "gateway>legacy" (its fallback)."""
        if side == "legacy":
            return side
        return f"gateway>{r.headers.get('X-Gateway-Upstream', 'gateway')}"

    def _refused(self, op: str, side: str, r: httpx.Response) -> None:
        try:
            code = r.json().get("error")
        except ValueError:
            code = "non-json"
        self.ledger.count(f"refused:{op}:{self.via(side, r)}:{r.status_code}:{code}")

    def _unexpected(self, op: str, side: str, path: str, r: httpx.Response) -> None:
        self.ledger.fail(
            f"{op} via {self.via(side, r)} {path}: unexpected {r.status_code} {r.text[:300]}"
        )

    def place(
        self, client: httpx.Client, side: str, body: dict[str, Any], key: str | None = None
    ) -> httpx.Response | None:
        """POST /api/orders; records a 201 and counts everything else."""
        headers = {"Idempotency-Key": key} if key else {}
        op = "place-keyed" if key else "place"
        r = self.request(client, op, side, "POST", "/api/orders", json=body, headers=headers)
        if r is None or r.status_code in UNKNOWN:
            with self.ledger.lock:
                self.ledger.unknown_places += 1
        if r is None:
            return None
        if r.status_code == 201:
            order = r.json()
            self.ledger.note(int(order["id"]), f"{op} via {self.via(side, r)}: 201")
            if order.get("status") != "placed" or order.get("customer_id") != body["customer_id"]:
                self._unexpected(op, side, "/api/orders", r)
            self.ledger.accept(side, order, cancellable=key is None)
            self.ledger.count(f"accepted:{op}:{self.via(side, r)}")
        elif r.status_code in REFUSED:
            self._refused(op, side, r)
        else:
            self._unexpected(op, side, "/api/orders", r)
        return r

    def cancel(self, client: httpx.Client, side: str, order_id: int) -> None:
        """POST /api/orders/{id}/cancel of an order some client was told was placed."""
        with self.ledger.lock:
            self.ledger.cancel_tried.add(order_id)
        path = f"/api/orders/{order_id}/cancel"
        r = self.request(client, "cancel", side, "POST", path)
        outcome = "no answer" if r is None else f"{r.status_code} {r.text[:80]}"
        self.ledger.note(
            order_id, f"cancel via {side if r is None else self.via(side, r)}: {outcome}"
        )
        if r is None:
            return
        if r.status_code == 200:
            if r.json().get("status") != "cancelled" or r.json().get("id") != order_id:
                self._unexpected("cancel", side, path, r)
            with self.ledger.lock:
                self.ledger.cancel_ok[order_id] = self.ledger.cancel_ok.get(order_id, 0) + 1
            self.ledger.count(f"accepted:cancel:{self.via(side, r)}")
        elif r.status_code in REFUSED:
            self._refused("cancel", side, r)
        elif (
            r.status_code == 404
            and self.via(side, r).endswith("legacy")
            and order_id >= NEW_ID_BASE
        ):
            # The legacy (directly, or as the gateway's fallback) learns the new service's orders
            # from events: lag, not loss. Any other 404 is an order lost by the side that has it.
            self.ledger.count(f"refused:cancel:{self.via(side, r)}:404-not-replicated-yet")
        else:
            self._unexpected("cancel", side, path, r)

    def reserve_release(self, client: httpx.Client, rng: random.Random) -> None:
        """A reservation without an order on one side, released again through either side."""
        sku = rng.choice(self.plan.contended)
        fake = next(self._fake_seq)
        side = rng.choice(SIDES)
        with self.ledger.lock:
            self.ledger.fake_reservations.add((sku, fake))
        path = f"/api/inventory/{sku}/reservations"
        r = self.request(client, "reserve", side, "POST", path, json={"order_id": fake, "qty": 1})
        if r is not None:
            if r.status_code in (200, 201):
                self.ledger.count(f"accepted:reserve:{self.via(side, r)}")
            elif r.status_code in REFUSED:
                self._refused("reserve", side, r)
            else:
                self._unexpected("reserve", side, path, r)
        time.sleep(rng.uniform(0, 0.2))
        self.release(client, rng.choice(SIDES), sku, fake)

    def release(self, client: httpx.Client, side: str, sku: str, fake: int) -> bool:
        """DELETE a test reservation; True once released (204)."""
        path = f"/api/inventory/{sku}/reservations/{fake}"
        r = self.request(client, "release", side, "DELETE", path)
        if r is None:
            return False
        if r.status_code == 204:
            with self.ledger.lock:
                self.ledger.released.add((sku, fake))
            self.ledger.count(f"accepted:release:{self.via(side, r)}")
            return True
        if r.status_code in REFUSED:
            self._refused("release", side, r)
        else:
            self._unexpected("release", side, path, r)
        return False

    # --- Idempotency-Keys -------------------------------------------------------------------------

    def new_key(self, rng: random.Random) -> KeyRecord:
        """A key with a body no other request of the run sends (its customer x tag sku is unique)."""
        n = next(self._key_seq)
        customers = self.plan.keyed_customers
        customer = customers[n % len(customers)]
        tag = self.plan.tags[(n // len(customers)) % len(self.plan.tags)]
        # Not a contended sku: most keyed orders get placed, so their repeats have a 201 to replay.
        items = [{"sku": tag, "qty": 1}]
        rec = KeyRecord(f"chaos-{self.seed}-{n}", customer, items, rng.choice(SIDES))
        with self.ledger.lock:
            self.ledger.keys[rec.key] = rec
        return rec

    def send_key(self, client: httpx.Client, rec: KeyRecord, side: str) -> httpx.Response | None:
        """One attempt of a keyed order; checks it against the key's earlier 201s."""
        r = self.place(client, side, rec.body, rec.key)
        status = None if r is None else r.status_code
        oid = None
        if r is not None and r.status_code == 201:
            body = r.json()
            oid = int(body["id"])
            with self.ledger.lock:
                rec.bodies.append(body)
                if rec.first_201 is None:
                    rec.first_201 = body
        with self.ledger.lock:
            rec.answers.append((side, status if status is not None else -1, oid))
        if r is not None and r.status_code == 422:
            self.ledger.fail(f"key {rec.key} via {side}: {r.text[:300]}")
        return r

    def visible(self, client: httpx.Client, side: str, rec: KeyRecord, order_id: int) -> bool:
        """Whether the order has reached `side`'s own database: its list by customer (a GET of
        one id could be answered by the orders service asking the legacy, which learns no key)."""
        base = self.urls["orders" if side == "gateway" else "legacy"]
        path = f"/api/orders?customer_id={rec.customer_id}&limit=500"
        try:
            r = client.get(base + path, timeout=TIMEOUT)
        except httpx.TransportError:
            return False
        return r.status_code == 200 and any(o["id"] == order_id for o in r.json()["items"])

    def keyed_flow(self, client: httpx.Client, rng: random.Random) -> None:
        """A new key: first attempt, an immediate repeat on the same side, and a repeat on the
        other side scheduled for when the order has reached it."""
        rec = self.new_key(rng)
        self.send_key(client, rec, rec.first_side)
        self.send_key(client, rec, rec.first_side)
        with self._due_lock:
            now = time.monotonic()
            self._due.append((now + 1.0, now, rec.key, other(rec.first_side)))

    def due_repeats(self, client: httpx.Client) -> None:
        """Repeats on the other side whose order is visible there now (else later, or at the end)."""
        now = time.monotonic()
        with self._due_lock:
            ready = [d for d in self._due if d[0] <= now]
            self._due = [d for d in self._due if d[0] > now]
        for _, born, key, side in ready:
            rec = self.ledger.keys[key]
            ids = rec.ids
            if len(ids) == 1 and self.visible(client, side, rec, next(iter(ids))):
                self.send_key(client, rec, side)
                self.ledger.may_cancel(rec.ids)
            elif now - born > 20:
                continue  # left for the final repeats
            elif not ids:
                # Nothing accepted yet: retry on the first side, as a client would (a gateway
                # that died mid-request still holds the key's claim for about one request).
                with self._due_lock:
                    self._due.append((now + 6.0, born, key, rec.first_side))
            else:
                with self._due_lock:
                    self._due.append((now + 1.0, born, key, side))

    # --- threads --------------------------------------------------------------------------------

    def _worker(self, index: int, actions: list[tuple[float, Callable[..., None]]]) -> None:
        rng = random.Random(self.seed * 1000 + index)
        weights = [w for w, _ in actions]
        with httpx.Client(timeout=TIMEOUT) as client:
            for _ in range(self.budget):
                if self.stop.is_set():
                    return
                action = rng.choices([a for _, a in actions], weights)[0]
                try:
                    action(client, rng)
                except Exception as exc:  # a bug in the driver must not pass as silence
                    self.ledger.fail(f"driver worker {index}: {exc!r}")
                time.sleep(self.pace)

    def _plain_order(self, side: str) -> Callable[[httpx.Client, random.Random], None]:
        def act(client: httpx.Client, rng: random.Random) -> None:
            body = {
                "customer_id": rng.choice(self.plan.plain_customers),
                "items": [{"sku": rng.choice(self.plan.contended), "qty": 1}],
            }
            self.place(client, side, body)

        return act

    def _cancel_any(self, client: httpx.Client, rng: random.Random) -> None:
        order_id = self.ledger.cancellable(rng)
        if order_id is not None:
            self.cancel(client, rng.choice(SIDES), order_id)

    def _keys(self, client: httpx.Client, rng: random.Random) -> None:
        self.due_repeats(client)
        if len(self.ledger.keys) < self.max_keys and rng.random() < 0.5:
            self.keyed_flow(client, rng)

    def start(self) -> None:
        """Start the client threads."""
        general = [
            (30.0, self._plain_order("gateway")),
            (25.0, self._plain_order("legacy")),
            (25.0, self._cancel_any),
            (15.0, self.reserve_release),
        ]
        for i in range(self.workers):
            self.threads.append(threading.Thread(target=self._worker, args=(i, general)))
        self.threads.append(
            threading.Thread(target=self._worker, args=(self.workers, [(1.0, self._keys)]))
        )
        for t in self.threads:
            t.daemon = True
            t.start()

    def join(self, timeout: float = 60.0) -> None:
        """Stop the clients and wait for them; a thread still stuck is a failure."""
        self.stop.set()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.1, deadline - time.monotonic()))
            if t.is_alive():
                self.ledger.fail(f"client thread {t.name} still running {timeout}s after stop")

    # --- after the traffic ----------------------------------------------------------------------

    def release_leftovers(self, deadline: float) -> list[tuple[str, int]]:
        """Release every test reservation not yet released; returns those that still are not."""
        with httpx.Client(timeout=TIMEOUT) as client:
            while time.monotonic() < deadline:
                with self.ledger.lock:
                    todo = sorted(self.ledger.fake_reservations - self.ledger.released)
                if not todo:
                    return []
                for sku, fake in todo:
                    self.release(client, "gateway", sku, fake)
                time.sleep(0.5)
        with self.ledger.lock:
            return sorted(self.ledger.fake_reservations - self.ledger.released)

    def final_keys(self, timeout: float) -> list[str]:
        """Every key once more on both sides once its order has reached both (I4 without lag).

        Keys that never got a 201 are sent first; then, once every keyed order is in both sides'
        own lists, each key goes to both sides. Returns the orders that never arrived."""
        missing: list[str] = []
        with httpx.Client(timeout=TIMEOUT) as client:
            recs = list(self.ledger.keys.values())
            for rec in recs:
                if not rec.ids:
                    self.send_key(client, rec, rec.first_side)
            deadline = time.monotonic() + timeout
            waiting = [(rec, side) for rec in recs if len(rec.ids) == 1 for side in SIDES]
            while waiting and time.monotonic() < deadline:
                waiting = [
                    (rec, side)
                    for rec, side in waiting
                    if not self.visible(client, side, rec, next(iter(rec.ids)))
                ]
                if waiting:
                    time.sleep(0.5)
            missing = [f"key {r.key}: order {sorted(r.ids)} not on {s}" for r, s in waiting]
            late = {r.key for r, _ in waiting}
            for rec in recs:
                if rec.key not in late:
                    for side in (rec.first_side, other(rec.first_side)):
                        self.send_key(client, rec, side)
        return missing
