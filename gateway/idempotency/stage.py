"""The proxy's idempotency stage (SPEC §4.12): admit a keyed request, then settle its claim.

    rule = runtime.idempotency                      # RouteIdempotency, compiled per route
    got = await rule.begin(store, key, method, target, body, content_type)
    if isinstance(got, Answer): -> replay_response(got, ...)     # the upstream is not contacted
    else: forward; then `await got.keep(answer)` for a 2xx, `await got.release()` otherwise

`begin` raises the gateway's JSON errors: 409 in progress, 422 reused, 503 store unavailable.
Only requests that carry the key on a route with `idempotency` ever reach the store.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Coroutine
from typing import Any

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from gateway import metrics
from gateway.config import Idempotency
from gateway.errors import (
    BadRequest,
    IdempotencyKeyInProgress,
    IdempotencyKeyReused,
    IdempotencyStoreUnavailable,
)
from gateway.idempotency.core import Answer, Stored, Verdict, decide, fingerprint, store_key
from gateway.idempotency.store import IdempotencyStore, StoreUnavailable

__all__ = [
    "MAX_REQUEST_BODY",
    "OUTCOMES",
    "REPLAY_UPSTREAM",
    "Claim",
    "RouteIdempotency",
    "replay_response",
    "settle_pending",
]

log = logging.getLogger("gateway.idempotency")

MAX_REQUEST_BODY = 1024 * 1024  # a keyed request's body is buffered whole to fingerprint it
REPLAY_UPSTREAM = "idempotency-store"  # `upstream` of a replay in the access log and metrics
OUTCOMES = ("stored", "replayed", "in_progress", "reused", "not_stored", "store_error")
_WARN_EVERY = 10.0


class RouteIdempotency:
    """One route's `idempotency` block as the proxy uses it, with pre-bound metric children."""

    __slots__ = ("route", "header", "methods", "ttl", "hold", "_counters")

    def __init__(self, route: str, config: Idempotency, hold: float) -> None:
        self.route = route
        self.header = config.header
        self.methods = frozenset(config.methods)
        self.ttl = float(config.ttl)
        self.hold = hold  # how long an in-flight claim lives (core.claim_hold)
        self._counters = {o: metrics.IDEMPOTENCY.labels(route, o) for o in OUTCOMES}

    def count(self, outcome: str) -> None:
        self._counters[outcome].inc()

    def key_of(self, headers: CIMultiDictProxy[str]) -> str | None:
        """The request's key; None when absent or empty (then the request is not guarded)."""
        values = headers.getall(self.header, ())
        if not values:
            return None
        if len(values) > 1:
            raise BadRequest(f"more than one {self.header} header")
        return values[0].strip() or None

    async def begin(
        self,
        store: IdempotencyStore | None,
        key: str,
        method: str,
        target: str,
        body: bytes | None,
        content_type: str | None,
    ) -> Answer | Claim:
        """Claim the key (then forward) or return the stored answer to replay; raises the 409,
        422 and 503 GatewayErrors. `target` is the normalised path with the query."""
        fp = fingerprint(method, target, body, content_type)
        skey = store_key(self.route, key)
        token = os.urandom(16).hex()
        try:
            if store is None:
                raise StoreUnavailable("no idempotency store is open")
            existing = await store.claim(skey, fp, token, self.hold)
        except StoreUnavailable as exc:
            _warn(f"idempotency store unavailable, keyed requests get 503: {exc}")
            self.count("store_error")
            raise IdempotencyStoreUnavailable(
                f"the idempotency store is unavailable; the request was not forwarded, "
                f"retry it with the same {self.header}",
                headers={"Retry-After": "1"},
            ) from None
        verdict = decide(existing, fp)
        if verdict is Verdict.FORWARD:
            return Claim(store, self, skey, token, fp)
        if verdict is Verdict.REPLAY:
            assert isinstance(existing, Stored)
            self.count("replayed")
            return existing.answer
        if verdict is Verdict.IN_PROGRESS:
            self.count("in_progress")
            raise IdempotencyKeyInProgress(
                f"a request with this {self.header} is still being processed; retry later",
                headers={"Retry-After": "1"},
            )
        self.count("reused")
        raise IdempotencyKeyReused(
            f"this {self.header} was already used for a different request "
            "(method, path, query or body differ)"
        )


class Claim:
    """A key this request holds in flight; settle it exactly once with `keep` or `release`.

    Settling runs shielded from cancellation: once the upstream has answered, a client that goes
    away must not leave the answer unstored (its retry would place a second order).
    """

    __slots__ = ("store", "rule", "key", "token", "fingerprint", "outcome")

    def __init__(
        self, store: IdempotencyStore, rule: RouteIdempotency, key: str, token: str, fp: str
    ) -> None:
        self.store = store
        self.rule = rule
        self.key = key
        self.token = token
        self.fingerprint = fp
        self.outcome: str | None = None  # stored | not_stored | store_error, once settled

    async def keep(self, answer: Answer) -> None:
        """Store the upstream's 2xx answer for repeats of this key."""
        if self.outcome is None:
            self.outcome = "settling"
            await _shielded(self._keep(answer))

    async def release(self) -> None:
        """Free the key (no answer worth keeping): the client's retry is forwarded again."""
        if self.outcome is None:
            self.outcome = "settling"
            await _shielded(self._release())

    async def _keep(self, answer: Answer) -> None:
        try:
            done = await self.store.complete(
                self.key, self.token, self.fingerprint, answer, self.rule.ttl
            )
        except StoreUnavailable as exc:
            # The client still gets its answer; repeats get 409 until the claim's hold expires.
            _warn(f"idempotency store unavailable, a {answer.status} answer was not stored: {exc}")
            self._settled("store_error")
            return
        if not done:
            log.warning(
                "idempotency claim on route %s expired before its answer came; not stored",
                self.rule.route,
            )
        self._settled("stored" if done else "not_stored")

    async def _release(self) -> None:
        try:
            await self.store.release(self.key, self.token)
        except StoreUnavailable as exc:
            _warn(f"idempotency store unavailable, a claim was not released: {exc}")
            self._settled("store_error")
            return
        self._settled("not_stored")

    def _settled(self, outcome: str) -> None:
        self.outcome = outcome
        self.rule.count(outcome)


def replay_response(answer: Answer, route: str, request_id: str) -> web.Response:
    """The stored answer again, marked `Idempotent-Replayed: true`, with this request's ids.

    X-Gateway-Upstream names the upstream that gave the stored answer.
    """
    headers = CIMultiDict(answer.headers)
    headers["X-Request-ID"] = request_id
    headers["X-Gateway-Route"] = route
    headers["X-Gateway-Upstream"] = answer.upstream
    headers["Idempotent-Replayed"] = "true"
    return web.Response(
        status=answer.status, reason=answer.reason or None, body=answer.body, headers=headers
    )


# -- settling in the background ------------------------------------------------------------------------
_pending: set[asyncio.Task[None]] = set()


async def _shielded(coro: Coroutine[Any, Any, None]) -> None:
    task = asyncio.ensure_future(coro)
    _pending.add(task)
    task.add_done_callback(_pending.discard)
    await asyncio.shield(task)


async def settle_pending(within: float = 5.0) -> None:
    """Wait (bounded) for claims still being settled: call before closing the store."""
    if _pending:
        await asyncio.wait(list(_pending), timeout=within)


class _Warnings:
    last = 0.0


def _warn(message: str) -> None:
    """A store outage is logged at most every few seconds, not once per request."""
    now = time.monotonic()
    if now - _Warnings.last >= _WARN_EVERY:
        _Warnings.last = now
        log.warning("%s", message)
