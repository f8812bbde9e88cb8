"""Stage body: the client's request body, buffered when small (or needed whole), else streamed."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.errors import PayloadTooLarge
from gateway.pipeline import shadow
from gateway.pipeline.context import Context
from gateway.shadow.mirror import ShadowMirror

__all__ = ["BUFFER_LIMIT", "BodyStream", "read_body", "whole_body"]

# Bodies up to this size (with a known length) are read whole: fewer writes, and replayable.
BUFFER_LIMIT = 64 * 1024


class BodyStream:
    """The client's request body as an async iterator that remembers whether it was consumed."""

    __slots__ = ("content", "started")

    def __init__(self, content: Any) -> None:
        self.content = content
        self.started = False

    def __aiter__(self) -> BodyStream:
        return self

    async def __anext__(self) -> bytes:
        self.started = True
        chunk: bytes = await self.content.readany()
        if not chunk:
            raise StopAsyncIteration
        return chunk


async def read_body(ctx: Context, mirror: ShadowMirror | None) -> None:
    """Sets `ctx.body` for a request that has one: bytes when its known length is at most
    BUFFER_LIMIT (or the shadow's max_body, so both upstreams can get the bytes), else a
    BodyStream (with its Content-Length passed on, when known)."""
    request = ctx.request
    capture = ctx.capture
    limit = BUFFER_LIMIT if capture is None else max(capture, BUFFER_LIMIT)
    length = request.content_length
    if length is not None and length <= limit:
        ctx.body = await request.read()
        return
    if length is not None:
        ctx.headers.append(("Content-Length", str(length)))
    ctx.body = BodyStream(request.content)
    if capture is not None:
        shadow.body_fits(ctx, mirror, limit)


async def whole_body(request: web.BaseRequest, limit: int) -> bytes | None:
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
