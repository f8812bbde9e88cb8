"""The proxy's idempotency stage (SPEC §4.12): admit a keyed request, then settle its claim.

In the pipeline (gateway.proxy), for a request that carries the key on a route with `idempotency`:

    replay = await admit(ctx, key, store, mirror)   # the stored answer, or None with ctx.claim held
    ... await forward_claimed(ctx)                  # decide + exchange, then keep or free the key

Underneath, per route:

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
from typing import TYPE_CHECKING, Any

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from gateway import metrics
from gateway.config import Idempotency
from gateway.errors import (
    BadRequest,
    IdempotencyKeyInProgress,
    IdempotencyKeyReused,
    IdempotencyRefused,
    IdempotencyStoreUnavailable,
)
from gateway.idempotency.core import (
    MAX_ANSWER_BODY,
    Answer,
    Stored,
    Verdict,
    decide,
    fingerprint,
    storable_headers,
    store_key,
)
from gateway.idempotency.store import IdempotencyStore, StoreUnavailable
from gateway.pipeline import shadow
from gateway.pipeline.body import whole_body
from gateway.pipeline.context import Context
from gateway.pipeline.decide import decide as decide_target
from gateway.pipeline.exchange import exchange, failed_midway
from gateway.upstream import BodyTooLarge, UpstreamError

if TYPE_CHECKING:
    from gateway.shadow.mirror import ShadowMirror

__all__ = [
    "MAX_REQUEST_BODY",
    "OUTCOMES",
    "REPLAY_UPSTREAM",
    "Claim",
    "RouteIdempotency",
    "admit",
    "forward_claimed",
    "key_of",
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


# -- the pipeline stage ---------------------------------------------------------------------------------
def key_of(ctx: Context) -> str | None:
    """The request's idempotency key when its route and method are guarded, else None (400 for
    a repeated key header)."""
    rule = ctx.rt.idempotency if ctx.rt is not None else None
    if rule is None or ctx.method not in rule.methods:
        return None
    return rule.key_of(ctx.request.headers)


async def admit(
    ctx: Context, key: str, store: IdempotencyStore | None, mirror: ShadowMirror | None
) -> web.StreamResponse | None:
    """Read the body whole (it is fingerprinted) and claim `key`: None with `ctx.claim` held,
    or the stored answer to replay. Raises 413, and the 409/422/503 of `begin`."""
    rule = ctx.rt.idempotency if ctx.rt is not None else None
    assert rule is not None
    request = ctx.request
    ctx.body = whole = await whole_body(request, MAX_REQUEST_BODY)
    try:
        got = await rule.begin(
            store,
            key,
            ctx.method,
            ctx.npath + ctx.query,
            whole,
            request.headers.get("Content-Type"),
        )
    except IdempotencyRefused as err:
        ctx.idempotency = err.outcome
        raise
    if isinstance(got, Answer):
        ctx.idempotency = "replayed"
        ctx.status, ctx.upstream, ctx.sent = got.status, REPLAY_UPSTREAM, len(got.body)
        return replay_response(got, rule.route, ctx.rid)
    ctx.claim = got
    if ctx.capture is not None:
        shadow.body_fits(ctx, mirror, ctx.capture)
    return None


async def forward_claimed(ctx: Context) -> None:
    """Forward a request holding a claim and settle the claim before the client sees anything:
    a 2xx body up to 1 MiB is read and stored (`ctx.kept` = the bytes); a larger one frees the
    key (`ctx.kept` = BodyTooLarge, with the part read so far); any other answer or a failure
    frees it too."""
    claim = ctx.claim
    assert claim is not None
    try:
        await exchange(ctx, decide_target(ctx))
    except BaseException:
        await claim.release()
        raise
    resp = ctx.resp
    target = ctx.target
    assert target is not None and ctx.rt is not None
    status = resp.status
    if not 200 <= status < 300:
        await claim.release()
        return
    has_body = not (ctx.method == "HEAD" or status == 204)
    try:
        data = await resp.read(MAX_ANSWER_BODY, idle_timeout=ctx.rt.timeout) if has_body else b""
    except BodyTooLarge as too_large:
        await claim.release()
        ctx.kept = too_large
        return
    except UpstreamError as exc:
        # Nothing was sent yet: the client gets a proper 502/504, not a cut connection.
        err = failed_midway(ctx, exc)
        ctx.target = None  # no answer was delivered: no duration observed
        await claim.release()
        raise err from None
    except BaseException:
        resp.release()
        ctx.target = None
        await claim.release()
        raise
    resp.release()
    await claim.keep(Answer(status, resp.reason, storable_headers(resp.headers), data, target.name))
    ctx.kept = data


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
