"""One access-log line per request (SPEC §4.9), buffered so the hot path never waits on a write.

Lines go to a file descriptor (stdout by default) in batches: at most every `flush_interval` seconds or when
the buffer passes `max_buffer` bytes, and always at shutdown.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

import orjson

_TEXT_FIELDS = (
    "request_id",
    "method",
    "path",
    "route",
    "upstream",
    "status",
    "duration_ms",
    "bytes",
)


class AccessLog:
    """Collects log records and writes them in batches to `fd`."""

    def __init__(
        self,
        fmt: str = "json",
        fd: int | None = None,
        flush_interval: float = 0.2,
        max_buffer: int = 64 * 1024,
    ) -> None:
        if fmt not in ("json", "text"):
            raise ValueError(f"log format must be json or text, not {fmt!r}")
        self.fmt = fmt
        self.fd = sys.stdout.fileno() if fd is None else fd
        self.flush_interval = flush_interval
        self.max_buffer = max_buffer
        self._buf = bytearray()
        self._timer: asyncio.TimerHandle | None = None

    def log(self, record: dict[str, Any]) -> None:
        """Queue one record; never blocks on I/O."""
        if self.fmt == "json":
            self._buf += orjson.dumps(record)
        else:
            self._buf += " ".join(f"{k}={record.get(k)}" for k in _TEXT_FIELDS).encode()
        self._buf += b"\n"
        if len(self._buf) >= self.max_buffer:
            self.flush()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._timer = loop.call_later(self.flush_interval, self.flush)

    def flush(self) -> None:
        """Write everything buffered (a short write on a pipe keeps the remainder)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._buf:
            try:
                n = os.write(self.fd, self._buf)
            except BlockingIOError:
                break
            except OSError:
                self._buf.clear()  # the log sink is gone; requests must not fail because of it
                break
            del self._buf[:n]


_second_cache: list[object] = [-1, ""]


def now_iso() -> str:
    """UTC wall-clock time with milliseconds, for log lines (the formatted second is cached)."""
    t = time.time()
    sec = int(t)
    if sec != _second_cache[0]:
        _second_cache[0] = sec
        _second_cache[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return f"{_second_cache[1]}.{int((t - sec) * 1000):03d}Z"
