"""One access-log line per request (SPEC §4.9), written so the event loop never waits on the sink.

`log()` appends the line to a buffer (one orjson call and one append on the hot path). The buffer is
handed, whole, to a writer thread every `flush_interval` seconds, when it passes `max_buffer` bytes,
and at shutdown (`aclose()`), so lines reach the sink in the order requests completed and none is
lost at exit. Only the thread calls os.write. On a pipe or socket it writes whole lines at most
PIPE_BUF bytes at a time, so the lines of `--workers` processes sharing one stdout never mix.
"""

from __future__ import annotations

import asyncio
import collections
import os
import select
import stat
import sys
import threading
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
_NEWLINE = orjson.OPT_APPEND_NEWLINE
# Bytes handed to the writer and not yet written; past this, flush() waits for the sink rather than
# losing lines or growing without bound (only when stdout's reader has stopped reading for long).
MAX_PENDING = 32 * 1024 * 1024


class AccessLog:
    """Collects log records and hands them in batches to a writer thread for `fd`."""

    def __init__(
        self,
        fmt: str = "json",
        fd: int | None = None,
        flush_interval: float = 0.2,
        max_buffer: int = 64 * 1024,
        max_pending: int = MAX_PENDING,
    ) -> None:
        if fmt not in ("json", "text"):
            raise ValueError(f"log format must be json or text, not {fmt!r}")
        self.fmt = fmt
        self._json = fmt == "json"
        self.fd = sys.stdout.fileno() if fd is None else fd
        self.flush_interval = flush_interval
        self.max_buffer = max_buffer
        self.max_pending = max_pending
        self._buf = bytearray()
        self._timer: asyncio.TimerHandle | None = None
        self._writer: _Writer | None = None

    def log(self, record: dict[str, Any]) -> None:
        """Queue one record. Never writes; waits only if a stalled sink has `max_pending` bytes
        still to take."""
        buf = self._buf
        if self._json:
            buf += orjson.dumps(record, option=_NEWLINE)
        else:
            buf += (" ".join(f"{k}={record.get(k)}" for k in _TEXT_FIELDS) + "\n").encode()
        if len(buf) >= self.max_buffer:
            self.flush()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._timer = loop.call_later(self.flush_interval, self.flush)

    def flush(self) -> None:
        """Hand everything buffered to the writer thread (started on first use)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._buf:
            return
        batch, self._buf = self._buf, bytearray()
        if self._writer is None:
            self._writer = _Writer(self.fd, self.max_pending)
            self._writer.start()
        self._writer.put(batch)

    def close(self) -> None:
        """Flush, and wait until the writer has written everything (blocks: for exit paths)."""
        self.flush()
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.put(None)
            writer.join()

    async def aclose(self) -> None:
        """`close()` without blocking the loop."""
        self.flush()
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.put(None)
            await asyncio.to_thread(writer.join)


class _Writer(threading.Thread):
    """Writes batches to `fd` in the order they were put; None ends it."""

    def __init__(self, fd: int, max_pending: int) -> None:
        super().__init__(name="access-log", daemon=True)
        self.fd = fd
        self.max_pending = max_pending
        self._batches: collections.deque[bytearray | None] = collections.deque()
        self._pending = 0  # bytes put and not yet written
        self._cond = threading.Condition()
        try:
            mode = os.fstat(fd).st_mode
            shared = stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)
        except OSError:
            shared = True
        # A pipe write of at most PIPE_BUF bytes is atomic; a regular file takes one write per batch.
        self.chunk = select.PIPE_BUF if shared else 1 << 30

    def put(self, batch: bytearray | None) -> None:
        """Queue a batch (None: stop after the queued ones); waits only past `max_pending`."""
        with self._cond:
            while batch is not None and self._pending > self.max_pending and self.is_alive():
                self._cond.wait(0.1)
            if batch is not None:
                self._pending += len(batch)
            self._batches.append(batch)
            self._cond.notify_all()

    def run(self) -> None:
        sink_ok = True
        while True:
            with self._cond:
                while not self._batches:
                    self._cond.wait()
                batch = self._batches.popleft()
            if batch is None:
                return
            # A gone sink drops the lines: requests must not fail because of the log.
            sink_ok = sink_ok and write_lines(self.fd, batch, self.chunk)
            with self._cond:
                self._pending -= len(batch)
                self._cond.notify_all()


def write_lines(fd: int, data: bytes | bytearray, chunk: int) -> bool:
    """Write `data` (whole lines) to `fd` in writes of whole lines of at most `chunk` bytes (a longer
    line alone in its write); False when the sink is gone."""
    view = memoryview(data)
    start, end = 0, len(data)
    while start < end:
        stop = start + chunk
        if stop >= end:
            stop = end
        else:
            cut = data.rfind(b"\n", start, stop)
            if cut >= 0:
                stop = cut + 1
            else:
                cut = data.find(b"\n", stop)
                stop = end if cut < 0 else cut + 1
        while start < stop:
            try:
                start += os.write(fd, view[start:stop])
            except BlockingIOError:  # someone made the fd non-blocking: wait until it drains
                select.select([], [fd], [], 1.0)
            except OSError:
                return False
    return True


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
