"""The request handler: route, guard with the breaker, forward, stream back (SPEC §4.2, §4.3).

Hot-path rules (SPEC §5): no disk, no Redis, no blocking calls, no per-request regex or formatter work;
metric children are pre-bound per route at table compile time (gateway.runtime).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from aiohttp import web

from gateway import metrics
from gateway.accesslog import AccessLog, now_iso
from gateway.errors import BadRequest, BreakerOpen, GatewayError, UpstreamFailed, UpstreamTimeout
from gateway.paths import BadPath, normalise
from gateway.runtime import RouteRuntime, Snapshot, Target
from gateway.upstream import UpstreamError, UpstreamResponse

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
    """What happened to one request beyond the obvious (for the access log)."""

    __slots__ = ("fallback",)

    def __init__(self) -> None:
        self.fallback: str | None = None  # "<from upstream>:<reason>" when the fallback served


def new_request_id() -> str:
    return os.urandom(16).hex()


class Proxy:
    """aiohttp low-level handler: `web.Server(Proxy(...))`."""

    def __init__(self, ref: SnapshotRef, access_log: AccessLog | None = None) -> None:
        self.ref = ref
        self.access_log = access_log
        self.draining = False

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
        status = 500
        sent = 0
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
                resp, target = await self._forward(
                    request, rt, match.upstream_path + query, headers, trace
                )
            except GatewayError as err:
                status = err.status
                up_name = err.upstream
                out = self._error_response(err, rt, up_name, rid)
                sent = len(out.body) if isinstance(out.body, bytes) else 0
                return out
            status = resp.status
            up_name = target.name
            return_value, sent = await self._respond(request, resp, rt, target, rid)
            return return_value
        finally:
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
                        "shadow": None,
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
            out.append((name, v.decode("latin-1")))
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

    async def _forward(
        self,
        request: web.BaseRequest,
        rt: RouteRuntime,
        target_path: str,
        headers: list[tuple[str, str]],
        trace: _Trace,
    ) -> tuple[UpstreamResponse, Target]:
        """Pick the upstream (split, breaker, fallback) and exchange; retries idempotent requests."""
        method = request.method
        idempotent = method in IDEMPOTENT
        body: bytes | _BodyStream | None = None
        length = request.content_length
        if request.body_exists:
            if length is not None and length <= BUFFER_LIMIT:
                body = await request.read()
            else:
                body = _BodyStream(request.content)
                if length is not None:
                    headers.append(("Content-Length", str(length)))
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
                return await self._attempt(
                    fallback, None, rt, method, target_path, headers, body, idempotent, trace
                )
            else:
                err = BreakerOpen(
                    f"circuit breaker for upstream {target.name!r} is open",
                    headers={"Retry-After": str(target.breaker.retry_after())},
                )
                err.upstream = target.name
                raise err
        return await self._attempt(
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
                err: GatewayError
                if exc.kind == "timeout":
                    err = UpstreamTimeout(
                        f"upstream {target.name!r} did not answer within {rt.timeout:g}s"
                    )
                else:
                    err = UpstreamFailed(f"upstream {target.name!r} failed: {exc}")
                err.upstream = target.name
                raise err from None
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

    # -- response side ---------------------------------------------------------------------------------
    async def _respond(
        self,
        request: web.BaseRequest,
        resp: UpstreamResponse,
        rt: RouteRuntime,
        target: Target,
        rid: str,
    ) -> tuple[web.StreamResponse, int]:
        """Send the upstream's answer to the client: whole when small, streamed otherwise."""
        headers: list[tuple[str, str]] = [
            (k, v) for k, v in resp.headers if k.lower() not in _RESPONSE_DROP
        ]
        headers.append(("X-Request-ID", rid))
        headers.append(("X-Gateway-Route", rt.name))
        headers.append(("X-Gateway-Upstream", target.name))
        length = resp.content_length
        status = resp.status
        has_body = not (request.method == "HEAD" or status in (204, 304) or status < 200)
        try:
            if not has_body or length is not None and length <= BUFFER_LIMIT:
                data = await resp.read(idle_timeout=rt.timeout) if has_body else b""
                resp.release()
                if length is not None:
                    headers.append(("Content-Length", str(length)))
                out = web.Response(
                    status=resp.status, reason=resp.reason, body=data, headers=headers
                )
                return out, len(data)
            stream = web.StreamResponse(status=resp.status, reason=resp.reason, headers=headers)
            if length is not None:
                stream.content_length = length
            await stream.prepare(request)
            sent = 0
            async for chunk in resp.iter_chunks(idle_timeout=rt.timeout):
                await stream.write(chunk)
                sent += len(chunk)
            resp.release()
            await stream.write_eof()
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
