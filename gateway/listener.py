"""The proxy's HTTP listener: aiohttp's low-level server plus a request-head deadline (slowloris guard).

aiohttp bounds idle keep-alive connections but not a client that trickles its request head; here a
connection that has started (or opened for) a request head and not completed it within `header_timeout`
seconds gets `408` and is closed (SPEC §6). Request bodies are not affected: the deadline only runs
between requests.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nConnection: close\r\n"
    b'Content-Length: 72\r\n\r\n{"error":"request_timeout","detail":"request head not received in time"}'
)


_data_received = RequestHandler.data_received


class _GuardedHandler(RequestHandler):
    __slots__ = ("_head_timeout", "_head_timer")

    def __init__(self, manager: web.Server, *, head_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._head_timeout = head_timeout
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        if self._head_timeout > 0 and self._head_timer is None:
            self._head_timer = self._loop.call_later(self._head_timeout, self._head_expired)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(_TIMEOUT_RESPONSE)
        self.force_close()

    def data_received(self, data: bytes) -> None:
        before = self._request_count
        _data_received(self, data)  # RequestHandler's, without a super() object per call
        if self._request_count != before:
            if self._head_timer is not None:  # a whole head arrived
                self._head_timer.cancel()
                self._head_timer = None
        elif self._current_request is None and not self._messages:
            self._arm()  # bytes of a new head, not complete yet

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A request aiohttp's parser rejected: the gateway's JSON error shape, not text/plain."""
        if request.writer.output_size > 0 or not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        text = str(exc.message if hasattr(exc, "message") else exc)
        code, error = 400, "bad_request"
        if isinstance(exc, LineTooLong):
            # The request line and header fields have distinct limits (see Settings), so the limit
            # the parser reports says which one was exceeded.
            url = len(exc.args) > 1 and exc.args[1] == self.max_line_size
            code, error = (414, "uri_too_long") if url else (431, "headers_too_large")
        elif "Too many headers" in text:
            code, error = 431, "headers_too_large"
        from gateway.proxy import new_request_id

        rid = new_request_id()
        body = {"error": error, "detail": text[:200], "route": None, "request_id": rid}
        resp = web.Response(
            status=code,
            body=orjson.dumps(body),
            content_type="application/json",
            headers={"X-Request-ID": rid},
        )
        resp.force_close()
        return resp


class ProxyServer(web.Server):
    """`web.Server` whose connections enforce the request-head deadline."""

    def __init__(self, handler: Any, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.header_timeout = header_timeout

    def __call__(self) -> RequestHandler:
        return _GuardedHandler(
            self, head_timeout=self.header_timeout, loop=self._loop, **self._kwargs
        )
