"""The gateway's own log lines, on stderr (the access log is gateway.accesslog, on stdout).

With `--log-format json` every line is one JSON object, formatted by python-json-logger:
`{"ts", "level", "logger", "message"}` plus any `extra=` fields and `exc_info`. Uncaught
exceptions, unraisable ones and warnings go through the same path, so nothing else reaches stderr.
A record is formatted where it is logged and written by a QueueListener thread, so a slow stderr
never stalls the event loop.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal

from pythonjsonlogger.orjson import OrjsonFormatter

__all__ = ["JsonFormatter", "setup_logging"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(OrjsonFormatter):
    """python-json-logger's formatter with the access log's timestamp: UTC, milliseconds, `Z`."""

    converter: Callable[[float | None], time.struct_time] = time.gmtime
    default_time_format = "%Y-%m-%dT%H:%M:%S"
    default_msec_format = "%s.%03dZ"

    def __init__(self) -> None:
        super().__init__(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
        )


class _Handoff(logging.handlers.QueueHandler):
    """Formats on the logging thread; the listener thread only writes the finished line."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record = super().prepare(record)
        record.stack_info = None  # already part of the formatted line
        return record


def formatter(fmt: Literal["json", "text"]) -> logging.Formatter:
    """The formatter of one log format."""
    return JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)


def setup_logging(fmt: Literal["json", "text"], level: int = logging.INFO) -> Callable[[], None]:
    """Send every log record of the process to stderr in `fmt`; returns `stop`, which writes what
    is queued and switches to writing directly (for lines logged while the interpreter exits)."""
    line = formatter(fmt)
    direct = logging.StreamHandler(sys.stderr)
    direct.setFormatter(line)
    writer = logging.StreamHandler(sys.stderr)
    writer.setFormatter(logging.Formatter("%(message)s"))
    records: queue.SimpleQueue[Any] = queue.SimpleQueue()
    handoff = _Handoff(records)
    handoff.setFormatter(line)
    listener = logging.handlers.QueueListener(records, writer)
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handoff)
    root.setLevel(level)
    logging.captureWarnings(True)
    _route_uncaught_exceptions()
    listener.start()

    def stop() -> None:
        if handoff not in root.handlers:
            return  # stopped already
        root.removeHandler(handoff)
        root.addHandler(direct)
        listener.stop()

    atexit.register(stop)  # also when the process ends without calling it (uncaught exception)
    return stop


def _route_uncaught_exceptions() -> None:
    """Tracebacks that Python would print itself become log records."""
    log = logging.getLogger("gateway")

    def excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        log.critical("uncaught exception", exc_info=(kind, exc, tb))

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None:
            return
        name = args.thread.name if args.thread is not None else "?"
        exc_info = (args.exc_type, args.exc_value, args.exc_traceback)
        log.error("uncaught exception in thread %s", name, exc_info=exc_info)

    def unraisable_hook(args: Any) -> None:
        exc = args.exc_value
        info = (type(exc), exc, args.exc_traceback) if exc is not None else None
        log.error("%s: %r", args.err_msg or "exception ignored in", args.object, exc_info=info)

    sys.excepthook = excepthook
    threading.excepthook = thread_hook
    sys.unraisablehook = unraisable_hook
