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


class _Stamp:
    """The last formatted second and millisecond (many requests share a millisecond under load)."""

    __slots__ = ("sec", "sec_text", "ms", "text")

    def __init__(self) -> None:
        self.sec = -1
        self.sec_text = ""
        self.ms = -1
        self.text = ""


_stamp = _Stamp()


def now_iso() -> str:
    """UTC wall-clock time with milliseconds, for log lines (the formatted second is cached)."""
    c = _stamp
    ms = int(time.time() * 1000)
    if ms != c.ms:
        sec, frac = divmod(ms, 1000)
        if sec != c.sec:
            c.sec = sec
            c.sec_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        c.ms = ms
        c.text = f"{c.sec_text}.{frac:03d}Z"
    return c.text
