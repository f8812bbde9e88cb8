"""Stage respond: the upstream's answer to the client (framed by gateway.http1), or the
gateway's own JSON error. Small bodies go whole in one write; large ones are streamed."""

from __future__ import annotations

import asyncio

from aiohttp import web

from gateway import http1
from gateway.errors import GatewayError
from gateway.pipeline import shadow
from gateway.pipeline.body import BUFFER_LIMIT
from gateway.pipeline.context import Context
from gateway.pipeline.exchange import failed_midway
from gateway.pipeline.headers import RESPONSE_DROP_BYTES, response_headers
from gateway.upstream import UpstreamError

__all__ = ["error_response", "respond"]


async def respond(ctx: Context) -> web.StreamResponse:
    """Send `ctx.resp` (from `ctx.target`); sets `ctx.status`, `ctx.upstream`, `ctx.sent`.
    A mirrored request also keeps up to `ctx.capture` bytes of the body (gateway.pipeline.shadow)."""
    request = ctx.request
    resp = ctx.resp
    target = ctx.target
    rt = ctx.rt
    assert target is not None and rt is not None
    status = resp.status
    ctx.status = status
    ctx.upstream = target.name
    method = ctx.method
    # The gateway's own header lines: X-Request-ID, then X-Gateway-Route / -Upstream.
    own = b"X-Request-ID: %s\r\n%s" % (ctx.rid.encode(), target.response_lines)
    kept = ctx.kept
    if isinstance(kept, bytes):
        # The idempotency stage read (and stored) the whole answer: framed like a small one.
        has_body = not (method == "HEAD" or status == 204)
        shadow.keep(ctx, kept)
        out, ctx.sent = http1.buffered(
            request,
            status,
            resp.reason,
            resp.raw_headers,
            RESPONSE_DROP_BYTES,
            own,
            has_body,
            len(kept) if has_body else resp.content_length,
            kept,
        )
        return out
    prefix = kept.partial if kept is not None else b""  # the start of a large keyed answer
    length = resp.content_length
    has_body = not (method == "HEAD" or status in (204, 304) or status < 200)
    try:
        if not prefix and (not has_body or length is not None and length <= BUFFER_LIMIT):
            data = await resp.read(idle_timeout=rt.timeout) if has_body else b""
            resp.release()
            if ctx.capture:
                shadow.keep(ctx, data)
            if status >= 100 and (method != "CONNECT" or not has_body):
                out, ctx.sent = http1.buffered(
                    request,
                    status,
                    resp.reason,
                    resp.raw_headers,
                    RESPONSE_DROP_BYTES,
                    own,
                    has_body,
                    length,
                    data,
                )
                return out
            # What http1 does not frame (a CONNECT tunnel's 2xx, a status below 100).
            headers = response_headers(resp, target, ctx.rid)
            if length is not None:
                headers.append(("Content-Length", str(length)))
            ctx.sent = len(data)
            return web.Response(status=status, reason=resp.reason, body=data, headers=headers)
        stream = http1.Streamed(
            status,
            resp.reason,
            resp.raw_headers,
            RESPONSE_DROP_BYTES,
            own,
            length,
        )
        await stream.prepare(request)
        capture = ctx.capture
        tap = shadow.Tap(capture, prefix) if capture else None
        sent = len(prefix)
        if prefix:
            await stream.write(prefix)
        async for chunk in resp.iter_chunks(idle_timeout=rt.timeout):
            await stream.write(chunk)
            sent += len(chunk)
            if tap is not None:
                tap.add(chunk)
        resp.release()
        await stream.write_eof()
        if tap is not None:
            ctx.captured = tap.result()
        ctx.sent = sent  # set once complete: an answer cut short is logged with 0 bytes
        return stream
    except UpstreamError as exc:
        # The head is already out: all we can do is count it and cut the client's connection.
        failed_midway(ctx, exc)
        if request.transport is not None:
            request.transport.close()
        raise asyncio.CancelledError from None
    except (ConnectionResetError, asyncio.CancelledError):
        resp.release()  # the client left: not the upstream's failure
        raise


def error_response(ctx: Context, err: GatewayError) -> web.Response:
    """The gateway's JSON error {"error","detail","route","request_id"} (SPEC §4.2)."""
    rt = ctx.rt
    rid = ctx.rid
    upstream = err.upstream
    ctx.status = err.status
    ctx.upstream = upstream
    headers = {"X-Request-ID": rid, **err.headers}
    if rt is not None:
        headers["X-Gateway-Route"] = rt.name
    if upstream is not None:
        headers["X-Gateway-Upstream"] = upstream
    body = err.body(rt.name if rt is not None else None, rid)
    ctx.sent = len(body)
    return web.Response(
        status=err.status, body=body, content_type="application/json", headers=headers
    )
