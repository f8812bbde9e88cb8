"""`python -m gateway serve`: logging, listeners, signals, graceful drain, and `--workers N` processes.

One process: the proxy (aiohttp low-level server) and the admin app on their own ports; SIGHUP reloads;
SIGTERM/SIGINT stop accepting, drain in-flight requests up to the grace period, flush, exit 0.
N workers: the parent starts N copies of itself, with exactly its Settings, that share both ports
(SO_REUSEPORT) and prometheus-client's multiprocess directory; it forwards SIGHUP/SIGTERM/SIGINT and
exits when they have.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from types import FrameType

from gateway.config import ConfigError, load_config
from gateway.logs import setup_logging
from gateway.settings import Settings

__all__ = ["WORKER_ENV", "run", "worker_command"]

log = logging.getLogger("gateway")

WORKER_ENV = "GATEWAY_WORKER"  # set in the workers' environment: serve, with SO_REUSEPORT


def run(settings: Settings) -> int:
    """Serve until SIGTERM/SIGINT; returns the process exit code."""
    stop_logging = setup_logging(settings.log_format)
    try:
        if settings.workers > 1 and not os.environ.get(WORKER_ENV):
            return _supervise(settings)
        try:
            import uvloop

            uvloop.install()
        except ImportError:  # pragma: no cover - uvloop is a dependency; keep working without it
            pass
        return asyncio.run(_serve(settings, reuse_port=bool(os.environ.get(WORKER_ENV))))
    finally:
        stop_logging()


async def _serve(settings: Settings, reuse_port: bool) -> int:
    from gateway.app import AdminTokenMissing, build_gateway  # the supervisor never needs it

    try:
        gw = build_gateway(settings)
    except ConfigError as exc:
        _refuse(exc)
        return 1
    except (AdminTokenMissing, OSError) as exc:
        log.error("gateway: %s", exc)
        return 1
    async with gw:
        try:
            await gw.listen(reuse_port)
        except OSError as exc:
            log.error("gateway: cannot listen: %s", exc)
            return 1
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGHUP, gw.reloader.trigger, "SIGHUP")
        log.info(
            "gateway serving on %s:%s (admin %s:%s), %d routes from %s",
            settings.host,
            settings.port,
            settings.admin_host,
            settings.admin_port,
            len(gw.ref.current.table.routes),
            settings.routes,
        )
        await stop.wait()
        log.info("draining in-flight requests (grace %ss)", settings.grace_period)
    log.info("stopped")
    return 0


def _refuse(exc: ConfigError) -> None:
    """Log, as one record, why the routes file (or a setting checked with it) stops the start."""
    lines = exc.lines()
    log.error(
        "%s: %d error(s), not starting:\n%s",
        exc.source,
        len(lines),
        "\n".join(lines),
        extra={"errors": lines},
    )


def worker_command(settings: Settings) -> list[str]:
    """The command line of one worker process: `serve` with the parent's settings."""
    return [sys.executable, "-m", "gateway", "serve", *settings.argv()]


def _supervise(settings: Settings) -> int:
    """Start N single-process workers sharing the ports (SO_REUSEPORT) and aggregated metrics."""
    try:  # one clear refusal here rather than one per worker
        load_config(settings.routes)
    except ConfigError as exc:
        _refuse(exc)
        return 1
    metrics_dir = tempfile.mkdtemp(prefix="gateway-metrics-")
    env = {
        **os.environ,
        **settings.environ(),
        WORKER_ENV: "1",
        "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
    }
    command = worker_command(settings)
    children = [subprocess.Popen(command, env=env) for _ in range(settings.workers)]
    log.info("gateway: %d workers started (pids %s)", len(children), [c.pid for c in children])

    def forward(sig: int, _frame: FrameType | None) -> None:
        for c in children:
            with contextlib.suppress(ProcessLookupError):
                c.send_signal(sig)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    codes = [c.wait() for c in children]
    shutil.rmtree(metrics_dir, ignore_errors=True)
    return max(codes)
