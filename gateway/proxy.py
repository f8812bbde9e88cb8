"""The request handler: route, guard with the breaker, forward, stream back (SPEC §4.2, §4.3, §4.12).

Hot-path rules (SPEC §5): no disk, no Redis, no blocking calls, no per-request regex or formatter work;
metric children are pre-bound per route at table compile time (gateway.runtime).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Coroutine
from typing import Any

from aiohttp import web
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE, HttpVersion10, HttpVersion11
from aiohttp.http_writer import _serialize_headers

from gateway import metrics
from gateway.accesslog import AccessLog, now_iso
from gateway.errors import (
    BadRequest,
    BreakerOpen,
    GatewayError,
    IdempotencyRefused,
    PayloadTooLarge,
    UpstreamFailed,
    UpstreamTimeout,
)
from gateway.idempotency import (
    MAX_REQUEST_BODY,
    REPLAY_UPSTREAM,
    Answer,
    Claim,
    IdempotencyStore,
    replay_response,
)
from gateway.idempotency.core import MAX_ANSWER_BODY, storable_headers
from gateway.paths import BadPath, normalise
from gateway.runtime import RouteRuntime, Snapshot, Target
from gateway.shadow.mirror import ShadowJob, ShadowMirror, should_mirror
from gateway.upstream import BodyTooLarge, UpstreamError, UpstreamResponse

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"}
)
# RFC 9110 §7.6.1 hop-by-hop fields, plus framing the upstream layer sets itself.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
_REQUEST_DROP = HOP_BY_HOP | {
    "content-length",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
}
_RESPONSE_DROP = HOP_BY_HOP | {"content-length", "x-request-id"}
BUFFER_LIMIT = (
    64 * 1024
)  # bodies up to this size (with a known length) are read whole: fewer writes
_MAX_REQUEST_ID = 200


class SnapshotRef:
    """The one reference to the serving snapshot; a reload replaces `current` in one assignment."""

    __slots__ = ("current",)

    def __init__(self, snapshot: Snapshot) -> None:
        self.current = snapshot


class _BodyStream:
    """The client's request body as an async iterator that remembers whether it was consumed."""

    __slots__ = ("content", "started")

    def __init__(self, content: Any) -> None:
        self.content = content
        self.started = False

    def __aiter__(self) -> _BodyStream:
        return self

    async def __anext__(self) -> bytes:
        self.started = True
        chunk: bytes = await self.content.readany()
        if not chunk:
            raise StopAsyncIteration
        return chunk


class _Trace:
    """What happened to one request beyond the obvious (for the access log and the shadow copy)."""

    __slots__ = ("fallback", "shadow", "captured", "capture", "idempotency")

    def __init__(self) -> None:
        self.fallback: str | None = None  # "<from upstream>:<reason>" when the fallback served
        self.shadow: str | None = None  # queued | dropped | skipped, when the route is shadowed
        self.idempotency: str | None = None  # the request's gateway_idempotency_total outcome
        self.capture = 0  # keep up to this many bytes of the primary's body for the shadow copy
        self.captured: bytes | None = None  # that body; None when it was larger than `capture`


_RID_BATCH = 64  # ids per os.urandom call: one syscall per 64 requests instead of one each
_rid_pool: list[str] = []


def new_request_id() -> str:
    """32 hex digits from os.urandom, drawn in batches."""
    if not _rid_pool:
        hexed = os.urandom(16 * _RID_BATCH).hex()
        _rid_pool.extend(hexed[i : i + 32] for i in range(0, len(hexed), 32))
    return _rid_pool.pop()


class Proxy:
    """aiohttp low-level handler: `web.Server(Proxy(...))`."""

    def __init__(self, ref: SnapshotRef, access_log: AccessLog | None = None) -> None:
        self.ref = ref
        self.access_log = access_log
        self.draining = False
        self.mirror: ShadowMirror | None = None  # set while the shadow mirror runs (gateway.app)
        # Opened by gateway.app; None: keyed requests on idempotency routes get 503.
        self.idempotency: IdempotencyStore | None = None

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        started = time.perf_counter()
        snap = self.ref.current  # the request keeps this table even if a reload swaps it
        method = request.method
        req_headers = request.headers
        rid = req_headers.get("X-Request-ID")
        if not rid or len(rid) > _MAX_REQUEST_ID or not rid.isprintable():
            rid = new_request_id()
        raw = request.raw_path
        q = raw.find("?")
        path, query = (raw, "") if q < 0 else (raw[:q], raw[q:])
        rt: RouteRuntime | None = None
        target: Target | None = None
        up_name: str | None = None
        trace = _Trace()
        body: bytes | _BodyStream | None
        claim: Claim | None = None  # an idempotency key this request holds in flight
        kept: bytes | BodyTooLarge | None = None  # what _forward_claimed read of the answer
        status = 500
        sent = 0
        inflight = metrics.INFLIGHT_NOW
        inflight.n += 1
        if inflight.via_gauge:
            metrics.INFLIGHT.inc()
        try:
            try:
                try:
                    npath = normalise(path)
                except BadPath as exc:
                    raise BadRequest(f"bad request path: {exc}") from None
                match = snap.table.match(method, npath)
                rt = snap.runtimes[match.route.name]
                headers = self._upstream_headers(request, snap, rid)
                mirror = self.mirror
                shadow = rt.shadow
                mirrored = (
                    shadow is not None and mirror is not None and should_mirror(shadow, method)
                )
                idem = rt.idempotency
                key = idem.key_of(req_headers) if idem and method in idem.methods else None
                if key is not None:
                    assert idem is not None
                    # Idempotency stage: the body is fingerprinted, so it is read whole first.
                    body = whole = await _whole_body(request, MAX_REQUEST_BODY)
                    got = await idem.begin(
                        self.idempotency,
                        key,
                        method,
                        npath + query,
                        whole,
                        req_headers.get("Content-Type"),
                    )
                    if isinstance(got, Answer):
                        trace.idempotency = "replayed"
                        status, up_name, sent = got.status, REPLAY_UPSTREAM, len(got.body)
                        return replay_response(got, rt.name, rid)
                    claim = got
                    if mirrored and whole is not None:
                        assert shadow is not None and mirror is not None
                        if len(whole) > shadow.max_body:
                            mirrored = False
                            mirror.skip(rt.name)
                            trace.shadow = "skipped"
                elif not request.body_exists:
                    body = None
                elif mirrored:
                    assert shadow is not None and mirror is not None
                    limit = max(shadow.max_body, BUFFER_LIMIT)
                    body = await self._request_body(request, headers, limit)
                    if not isinstance(body, bytes):
                        mirrored = False
                        mirror.skip(rt.name)
                        trace.shadow = "skipped"
                else:
                    body = await self._request_body(request, headers)
                if mirrored:
                    trace.capture = shadow.max_body  # type: ignore[union-attr]
                target_path = match.upstream_path + query
                if claim is None:
                    resp, target = await self._forward(
                        request, rt, target_path, headers, body, trace
                    )
                else:
                    resp, target, kept = await self._forward_claimed(
                        request, rt, target_path, headers, whole, trace, claim
                    )
            except GatewayError as err:
                if isinstance(err, IdempotencyRefused):
                    trace.idempotency = err.outcome
                status = err.status
                up_name = err.upstream
                out = self._error_response(err, rt, up_name, rid)
                sent = len(out.body) if isinstance(out.body, bytes) else 0
                return out
            status = resp.status
            up_name = target.name
            if isinstance(kept, bytes):
                return_value, sent = _send_kept(request, resp, target, rid, kept, trace)
            else:
                prefix = kept.partial if kept is not None else b""
                return_value, sent = await self._respond(
                    request, resp, rt, target, rid, trace, prefix
                )
            if trace.capture and trace.fallback is None:
                trace.shadow = self._mirror(
                    rt, method, target_path, headers, body, resp, target, trace, started
                )
            return return_value
        finally:
            if claim is not None:
                trace.idempotency = claim.outcome
            inflight.n -= 1
            if inflight.via_gauge:
                metrics.INFLIGHT.dec()
            elapsed = time.perf_counter() - started
            m = method if method in KNOWN_METHODS else "OTHER"
            if rt is not None:
                rt.count(up_name or "none", m, status)
                if target is not None:
                    target.duration.observe(elapsed)
            else:
                metrics.REQUESTS.labels("none", "none", m, str(status)).inc()
            if self.access_log is not None:
                self.access_log.log(
                    {
                        "ts": now_iso(),
                        "request_id": rid,
                        "client": request.remote,
                        "method": method,
                        "path": path,
                        "route": rt.name if rt is not None else None,
                        "upstream": up_name,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                        "bytes": sent,
                        "fallback": trace.fallback,
                        "shadow": trace.shadow,
                        "idempotency": trace.idempotency,
                    }
                )

    # -- request side ----------------------------------------------------------------------------------
    @staticmethod
    def _upstream_headers(
        request: web.BaseRequest, snap: Snapshot, rid: str
    ) -> list[tuple[str, str]]:
        """Client headers minus hop-by-hop and spoofable ones, plus X-Forwarded-* and X-Request-ID."""
        conn_tokens: frozenset[str] = frozenset()
        connection = request.headers.get("Connection")
        if connection:
            conn_tokens = frozenset(t.strip().lower() for t in connection.split(","))
        out: list[tuple[str, str]] = []
        client_xff = client_proto = client_host = None
        for k, v in request.raw_headers:
            name = k.decode("latin-1")
            lname = name.lower()
            if lname in _REQUEST_DROP or lname in conn_tokens or lname.startswith("x-auth-"):
                if lname == "x-forwarded-for":
                    client_xff = v.decode("latin-1")
                elif lname == "x-forwarded-proto":
                    client_proto = v.decode("latin-1")
                elif lname == "x-forwarded-host":
                    client_host = v.decode("latin-1")
                continue
            out.append((name, v.decode("utf-8", "surrogateescape")))
        peer = request.remote or ""
        trusted = snap.trusted and snap.is_trusted(peer)
        if trusted and client_xff:
            out.append(("X-Forwarded-For", f"{client_xff}, {peer}"))
        else:
            out.append(("X-Forwarded-For", peer))
        out.append(("X-Forwarded-Proto", (trusted and client_proto) or request.scheme))
        out.append(("X-Forwarded-Host", (trusted and client_host) or request.host))
        out.append(("X-Request-ID", rid))
        return out

    @staticmethod
    async def _request_body(
        request: web.BaseRequest, headers: list[tuple[str, str]], limit: int = BUFFER_LIMIT
    ) -> bytes | _BodyStream:
        """The client's body: read whole when its known length is at most `limit`, else streamed.
        A mirrored request passes the shadow's max_body, so both upstreams can get the bytes."""
        length = request.content_length
        if length is not None and length <= limit:
            return await request.read()
        if length is not None:
            headers.append(("Content-Length", str(length)))
        return _BodyStream(request.content)

    def _mirror(
        self,
        rt: RouteRuntime,
        method: str,
        target_path: str,
        headers: list[tuple[str, str]],
        body: bytes | _BodyStream | None,
        resp: UpstreamResponse,
        target: Target,
        trace: _Trace,
        started: float,
    ) -> str:
        """Hand the copy to the shadow mirror (non-blocking): queued, dropped or skipped."""
        mirror, shadow, pool = self.mirror, rt.shadow, rt.shadow_pool
        if mirror is None or shadow is None or pool is None:
            return "skipped"
        if trace.captured is None:
            mirror.skip(rt.name)  # the primary's body was larger than max_body
            return "skipped"
        job = ShadowJob(
            route=rt.name,
            shadow=shadow,
            method=method,
            target=target_path,
            headers=headers,
            body=body if isinstance(body, bytes) else None,
            primary_status=resp.status,
            primary_headers=resp.headers,
            primary_body=trace.captured,
            primary_latency=time.perf_counter() - started,
            shadow_pool=pool,
            primary_pool=target.pool,
            timeout=rt.shadow_timeout,
        )
        return "queued" if mirror.submit(job) else "dropped"

    def _forward(
        self,
        request: web.BaseRequest,
        rt: RouteRuntime,
        target_path: str,
        headers: list[tuple[str, str]],
        body: bytes | _BodyStream | None,
        trace: _Trace,
    ) -> Coroutine[Any, Any, tuple[UpstreamResponse, Target]]:
        """Pick the upstream (split, breaker, fallback): the exchange to await, which retries
        idempotent requests. Raises BreakerOpen right away. Not a coroutine itself: one await less
        per request."""
        method = request.method
        idempotent = method in IDEMPOTENT
        sticky = request.headers.get(rt.sticky) if rt.sticky else None
        target = rt.targets[rt.pick(sticky)]
        fallback = rt.fallback
        if not target.breaker.allow():
            alt = None
            for t in rt.targets:  # an open canary side sends its share to the other side
                if t is not target and t.breaker.allow():
                    alt = t
                    break
            if alt is not None:
                target = alt
            elif fallback is not None and fallback.breaker.allow():
                self._fell_back(rt, target, fallback, "breaker_open", trace)
                return self._attempt(
                    fallback, None, rt, method, target_path, headers, body, idempotent, trace
                )
            else:
                err = BreakerOpen(
                    f"circuit breaker for upstream {target.name!r} is open",
                    headers={"Retry-After": str(target.breaker.retry_after())},
                )
                err.upstream = target.name
                raise err
        return self._attempt(
            target, fallback, rt, method, target_path, headers, body, idempotent, trace
        )

    async def _attempt(
        self,
        target: Target,
        fallback: Target | None,
        rt: RouteRuntime,
        method: str,
        target_path: str,
        headers: list[tuple[str, str]],
        body: bytes | _BodyStream | None,
        idempotent: bool,
        trace: _Trace,
    ) -> tuple[UpstreamResponse, Target]:
        attempts = 1 + (rt.retries if idempotent else 0)
        attempt = 0
        while True:
            attempt += 1
            try:
                resp = await target.pool.exchange(
                    method, target_path, headers, body, timeout=rt.timeout, idempotent=idempotent
                )
            except UpstreamError as exc:
                target.errors[exc.kind].inc()
                target.breaker.failure()
                replayable = not isinstance(body, _BodyStream) or not body.started
                if (
                    attempt < attempts
                    and exc.kind in ("connect", "timeout")
                    and replayable
                    and target.breaker.allow()
                ):
                    continue
                if (
                    fallback is not None
                    and replayable
                    and (exc.kind == "connect" or not exc.request_sent or idempotent)
                    and fallback.breaker.allow()
                ):
                    self._fell_back(rt, target, fallback, exc.kind, trace)
                    return await self._attempt(
                        fallback, None, rt, method, target_path, headers, body, idempotent, trace
                    )
                raise _upstream_error(exc, target, rt) from None
            except BaseException:
                target.breaker.abandon()
                raise
            if resp.status >= 500:
                target.errors["status"].inc()
                target.breaker.failure()
                if (
                    fallback is not None
                    and idempotent
                    and not isinstance(body, _BodyStream)
                    and fallback.breaker.allow()
                ):
                    resp.release()
                    self._fell_back(rt, target, fallback, "status", trace)
                    return await self._attempt(
                        fallback, None, rt, method, target_path, headers, body, idempotent, trace
                    )
            else:
                target.breaker.success()
            return resp, target

    @staticmethod
    def _fell_back(
        rt: RouteRuntime, source: Target, fallback: Target, reason: str, trace: _Trace
    ) -> None:
        rt.count_fallback(source.name, fallback.name, reason)
        trace.fallback = f"{source.name}:{reason}"

    async def _forward_claimed(
        self,
        request: web.BaseRequest,
        rt: RouteRuntime,
        target_path: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        trace: _Trace,
        claim: Claim,
    ) -> tuple[UpstreamResponse, Target, bytes | BodyTooLarge | None]:
        """Forward a request holding an idempotency claim and settle the claim before the client
        sees anything: a 2xx body up to 1 MiB is read and stored (returned as bytes); a larger one
        frees the key (BodyTooLarge, with the part read so far); any other answer or a failure
        frees it too (None, or the exception)."""
        try:
            resp, target = await self._forward(request, rt, target_path, headers, body, trace)
        except BaseException:
            await claim.release()
            raise
        status = resp.status
        if not 200 <= status < 300:
            await claim.release()
            return resp, target, None
        has_body = not (request.method == "HEAD" or status == 204)
        try:
            data = await resp.read(MAX_ANSWER_BODY, idle_timeout=rt.timeout) if has_body else b""
        except BodyTooLarge as too_large:
            await claim.release()
            return resp, target, too_large
        except UpstreamError as exc:
            # Nothing was sent yet: the client gets a proper 502/504, not a cut connection.
            target.errors[exc.kind].inc()
            target.breaker.failure()
            resp.release()
            await claim.release()
            raise _upstream_error(exc, target, rt) from None
        except BaseException:
            resp.release()
            await claim.release()
            raise
        resp.release()
        answer = Answer(status, resp.reason, storable_headers(resp.headers), data, target.name)
        await claim.keep(answer)
        return resp, target, data

    # -- response side ---------------------------------------------------------------------------------
    async def _respond(
        self,
        request: web.BaseRequest,
        resp: UpstreamResponse,
        rt: RouteRuntime,
        target: Target,
        rid: str,
        trace: _Trace,
        prefix: bytes = b"",
    ) -> tuple[web.StreamResponse, int]:
        """Send the upstream's answer to the client: whole when small, streamed otherwise.
        A shadowed request also keeps up to `trace.capture` bytes of the body for comparison.
        `prefix`: body bytes already read off `resp` (a large answer to a keyed request)."""
        length = resp.content_length
        status = resp.status
        method = request.method
        has_body = not (method == "HEAD" or status in (204, 304) or status < 200)
        try:
            if not prefix and (not has_body or length is not None and length <= BUFFER_LIMIT):
                data = await resp.read(idle_timeout=rt.timeout) if has_body else b""
                resp.release()
                if trace.capture:
                    trace.captured = data if len(data) <= trace.capture else None
                if status >= 100 and (method != "CONNECT" or not has_body):
                    return _buffered(request, resp, target, rid, has_body, length, data)
                # What _buffered() does not mirror (a CONNECT tunnel's 2xx, a status below 100).
                headers = _response_headers(resp, target, rid)
                if length is not None:
                    headers.append(("Content-Length", str(length)))
                out = web.Response(
                    status=resp.status, reason=resp.reason, body=data, headers=headers
                )
                return out, len(data)
            headers = _response_headers(resp, target, rid)
            stream = web.StreamResponse(status=resp.status, reason=resp.reason, headers=headers)
            if length is not None:
                stream.content_length = length
            await stream.prepare(request)
            sent = 0
            capture = trace.capture
            kept = bytearray() if capture else None
            if prefix:
                await stream.write(prefix)
                sent = len(prefix)
                if kept is not None:
                    kept = bytearray(prefix) if sent <= capture else None
            async for chunk in resp.iter_chunks(idle_timeout=rt.timeout):
                await stream.write(chunk)
                sent += len(chunk)
                if kept is not None:
                    if len(kept) + len(chunk) <= capture:
                        kept += chunk
                    else:
                        kept = None  # larger than max_body: the copy is skipped
            resp.release()
            await stream.write_eof()
            if capture:
                trace.captured = bytes(kept) if kept is not None else None
            return stream, sent
        except UpstreamError as exc:
            # The head is already out: all we can do is count it and cut the client's connection.
            target.errors[exc.kind].inc()
            target.breaker.failure()
            resp.release()
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError from None
        except (ConnectionResetError, asyncio.CancelledError):
            resp.release()  # the client left: not the upstream's failure
            raise

    @staticmethod
    def _error_response(
        err: GatewayError, rt: RouteRuntime | None, upstream: str | None, rid: str
    ) -> web.Response:
        headers = {"X-Request-ID": rid, **err.headers}
        if rt is not None:
            headers["X-Gateway-Route"] = rt.name
        if upstream is not None:
            headers["X-Gateway-Upstream"] = upstream
        return web.Response(
            status=err.status,
            body=err.body(rt.name if rt is not None else None, rid),
            content_type="application/json",
            headers=headers,
        )


def _upstream_error(exc: UpstreamError, target: Target, rt: RouteRuntime) -> GatewayError:
    """The client's 504 (timeout) or 502 (anything else) for an upstream failure."""
    err: GatewayError
    if exc.kind == "timeout":
        err = UpstreamTimeout(f"upstream {target.name!r} did not answer within {rt.timeout:g}s")
    else:
        err = UpstreamFailed(f"upstream {target.name!r} failed: {exc}")
    err.upstream = target.name
    return err


async def _whole_body(request: web.BaseRequest, limit: int) -> bytes | None:
    """The whole request body (None without one); 413 past `limit` bytes."""
    if not request.body_exists:
        return None
    length = request.content_length
    too_large = PayloadTooLarge(f"request body larger than {limit} bytes on an idempotency route")
    if length is not None and length > limit:
        raise too_large
    data = bytearray()
    while chunk := await request.content.readany():
        data += chunk
        if len(data) > limit:
            raise too_large
    return bytes(data)


def _send_kept(
    request: web.BaseRequest,
    resp: UpstreamResponse,
    target: Target,
    rid: str,
    data: bytes,
    trace: _Trace,
) -> tuple[web.StreamResponse, int]:
    """The answer `_forward_claimed` read (and stored), framed as `_respond` frames small ones."""
    has_body = not (request.method == "HEAD" or resp.status == 204)
    if trace.capture:
        trace.captured = data if len(data) <= trace.capture else None
    length = len(data) if has_body else resp.content_length
    return _buffered(request, resp, target, rid, has_body, length, data)


def _response_headers(resp: UpstreamResponse, target: Target, rid: str) -> list[tuple[str, str]]:
    """The upstream's headers minus hop-by-hop and framing, plus the gateway's own."""
    headers = [(k, v) for k, v in resp.headers if k.lower() not in _RESPONSE_DROP]
    headers.append(("X-Request-ID", rid))
    headers.append(("X-Gateway-Route", target.route))
    headers.append(("X-Gateway-Upstream", target.name))
    return headers


# -- the buffered response, written here instead of by web.Response -----------------------------------
# For a body that is already in memory, building a web.Response and letting aiohttp prepare it costs a
# CIMultiDict, a dozen header look-ups, five coroutines and a decode/encode round trip of every header.
# _buffered() produces the bytes aiohttp would have sent: the upstream's header lines as received
# (llhttp admits no control characters in them; obs-text that is not UTF-8 is re-encoded exactly as
# aiohttp's writer did with the latin-1 text), the gateway's headers, and what aiohttp's Response adds
# (Content-Length rules for HEAD/204/304, the Content-Type default, Date, Server, Connection). aiohttp
# writes them with one write when it prepares the response, where it would have written a web.Response.

_CT, _DATE, _SERVER = 1, 2, 4
_DEFAULTED = {b"content-type": _CT, b"date": _DATE, b"server": _SERVER}
_RESPONSE_DROP_BYTES = frozenset(name.encode() for name in _RESPONSE_DROP)
_EMPTY = frozenset((204, 304, *range(100, 200)))  # aiohttp's EMPTY_BODY_STATUS_CODES
_SERVER_LINE = f"Server: {SERVER_SOFTWARE}\r\n".encode()
_status_lines: dict[tuple[int, int, int, str], bytes] = {}


class _HeaderList(list[tuple[str, str]]):
    """A header list aiohttp's serializer accepts (it iterates `headers.items()`)."""

    __slots__ = ()

    def items(self) -> _HeaderList:
        return self


def _status_line(version: Any, status: int, reason: str) -> bytes:
    """b"HTTP/1.1 200 OK\\r\\n", checked and encoded by aiohttp's serializer once per distinct line."""
    key = (version[0], version[1], status, reason)
    line = _status_lines.get(key)
    if line is None:
        if "\r" in reason or "\n" in reason:
            raise ValueError("Reason cannot contain \\r or \\n")  # web.Response's own check
        text = f"HTTP/{version[0]}.{version[1]} {status} {reason}"
        line = _serialize_headers(text, _HeaderList())[:-2]  # type: ignore[arg-type]
        if len(_status_lines) >= 1024:  # reasons are upstream-chosen: stay bounded
            _status_lines.clear()
        _status_lines[key] = line
    return line


def _reencoded(value: bytes) -> bytes:
    """What aiohttp sent for a non-ASCII value: UTF-8 as is, other obs-text via latin-1 text."""
    try:
        value.decode("utf-8")
        return value
    except UnicodeDecodeError:
        return value.decode("latin-1").encode("utf-8")


def _buffered(
    request: web.BaseRequest,
    resp: UpstreamResponse,
    target: Target,
    rid: str,
    has_body: bool,
    length: int | None,
    body: bytes,
) -> tuple[web.StreamResponse, int]:
    """The complete response (head and body) for a body already read, framed as aiohttp would."""
    version = request.version
    keep_alive = request.keep_alive
    status = resp.status
    try:
        parts = [_status_line(version, status, resp.reason)]
    except ValueError as exc:
        # aiohttp raised this while writing the head, after the handler: keep it there.
        return _Prebuilt(b"", status, keep_alive, exc), 0
    add = parts.append
    defaulted = 0  # which of Content-Type / Date / Server the upstream sent (bit flags)
    for name, value in resp.raw_headers:
        lname = name.lower()
        if lname in _RESPONSE_DROP_BYTES:
            continue
        bit = _DEFAULTED.get(lname)
        if bit is not None:
            defaulted |= bit
        if not value.isascii():
            value = _reencoded(value)
        add(b"%s: %s\r\n" % (name, value))
    add(b"X-Request-ID: %s\r\n" % rid.encode())
    if target.response_lines_error is not None:
        return _Prebuilt(b"", status, keep_alive, target.response_lines_error), 0
    add(target.response_lines)
    if has_body:
        add(b"Content-Length: %d\r\n" % length)  # type: ignore[str-format]
        if length and not defaulted & _CT:
            add(b"Content-Type: application/octet-stream\r\n")
    elif length is not None and status not in _EMPTY:
        add(b"Content-Length: %d\r\n" % length)  # HEAD keeps the length a GET would have
    if not defaulted & _DATE:
        add(b"Date: %s\r\n" % rfc822_formatted_time().encode())
    if not defaulted & _SERVER:
        add(_SERVER_LINE)
    if keep_alive:
        if version == HttpVersion10:
            add(b"Connection: keep-alive\r\n")
    elif version == HttpVersion11:
        add(b"Connection: close\r\n")
    add(b"\r\n")
    if body:
        add(body)
    return _Prebuilt(b"".join(parts), status, keep_alive, None), len(body)


class _Prebuilt(web.StreamResponse):
    """A response whose bytes are ready: aiohttp's prepare() writes them, write_eof() is a no-op.

    StreamResponse.__init__ is skipped on purpose (no header multidict to build); the class-level
    defaults cover every attribute aiohttp's server reads after the handler (`keep_alive`, the eof state).
    """

    def __init__(self, data: bytes, status: int, keep_alive: bool, error: Exception | None) -> None:
        self._data = data
        self._status = status
        self._reason = ""
        self._keep_alive = keep_alive
        self._error = error

    async def prepare(self, request: web.BaseRequest) -> None:  # type: ignore[override]
        if self._eof_sent:
            return
        if self._error is not None:
            raise self._error
        self._eof_sent = True
        # As StreamWriter.write_eof would: one transport write, then wait only if the client is slow.
        await request._payload_writer.write_eof(self._data)
        self._body_length = len(self._data)

    async def write_eof(self, data: bytes = b"") -> None:
        return
