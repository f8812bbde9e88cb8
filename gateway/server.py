"""`python -m gateway serve`: listeners, signals, graceful drain, and `--workers N` processes.

One process: the proxy (aiohttp low-level server) and the admin app on their own ports; SIGHUP reloads;
SIGTERM/SIGINT stop accepting, drain in-flight requests up to the grace period, flush, exit 0.
N workers: the parent starts N copies of itself with SO_REUSEPORT on both ports and prometheus-client's
multiprocess mode, forwards SIGHUP/SIGTERM/SIGINT and exits when they have.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
from typing import Any

log = logging.getLogger("gateway")


def _setup_logging(fmt: str) -> None:
    if fmt == "json":
        logging.basicConfig(
            level=logging.INFO,
            stream=sys.stderr,
            format='{"ts":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","message":%(message)r}',
        )
    else:
        logging.basicConfig(
            level=logging.INFO,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )


def run(options: Any) -> int:
    """Serve until SIGTERM/SIGINT; returns the process exit code."""
    if int(getattr(options, "workers", 1) or 1) > 1 and not os.environ.get("GATEWAY_WORKER"):
        return _run_workers(options)
    _setup_logging(options.log_format)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency; keep working without it
        pass
    return asyncio.run(_serve(options))


async def _serve(options: Any) -> int:
    from aiohttp import web

    from gateway.app import AdminTokenMissing, Settings, build_gateway
    from gateway.config import ConfigError

    reuse_port = bool(os.environ.get("GATEWAY_WORKER"))
    settings = Settings(
        routes=options.routes,
        admin_host=options.admin_host,
        log_format=options.log_format,
        header_timeout=float(getattr(options, "header_timeout", 10.0)),
        watch_interval=float(os.environ.get("GATEWAY_WATCH_INTERVAL", "0.5")),
    )
    try:
        gw = build_gateway(settings)
    except (ConfigError, AdminTokenMissing, OSError) as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 1
    grace = float(getattr(options, "grace_period", 30.0))
    proxy_runner = web.ServerRunner(gw.server, shutdown_timeout=grace)
    admin_runner = web.AppRunner(gw.admin_app, access_log=None, shutdown_timeout=5.0)
    await proxy_runner.setup()
    await admin_runner.setup()
    try:
        await web.TCPSite(
            proxy_runner, options.host, options.port, reuse_port=reuse_port, backlog=1024
        ).start()
        await web.TCPSite(
            admin_runner, options.admin_host, options.admin_port, reuse_port=reuse_port
        ).start()
    except OSError as exc:
        print(f"gateway: cannot listen: {exc}", file=sys.stderr)
        await admin_runner.cleanup()
        await proxy_runner.cleanup()
        await gw.close()
        return 1
    await gw.start_background()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, gw.reloader.trigger, "SIGHUP")
    log.info(
        "gateway serving on %s:%s (admin %s:%s), %d routes from %s",
        options.host,
        options.port,
        options.admin_host,
        options.admin_port,
        len(gw.ref.current.table.routes),
        options.routes,
    )
    await stop.wait()
    log.info("draining in-flight requests (grace %ss)", grace)
    gw.proxy.draining = True
    await proxy_runner.cleanup()  # stops accepting, waits for in-flight handlers up to `grace`
    await admin_runner.cleanup()
    await gw.close()
    log.info("stopped")
    return 0


def _run_workers(options: Any) -> int:
    """Start N single-process workers sharing the ports (SO_REUSEPORT) and aggregated metrics."""
    n = int(options.workers)
    metrics_dir = tempfile.mkdtemp(prefix="gateway-metrics-")
    env = {**os.environ, "GATEWAY_WORKER": "1", "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
    argv = (
        [sys.executable, "-m", "gateway", *sys.argv[1:]]
        if sys.argv[0].endswith("__main__.py")
        else [
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "--routes",
            options.routes,
            "--host",
            options.host,
            "--port",
            str(options.port),
            "--admin-host",
            options.admin_host,
            "--admin-port",
            str(options.admin_port),
            "--log-format",
            options.log_format,
        ]
    )
    children = [subprocess.Popen(argv, env=env) for _ in range(n)]

    def forward(sig: int, _frame: Any) -> None:
        for c in children:
            with contextlib.suppress(ProcessLookupError):
                c.send_signal(sig)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    codes = [c.wait() for c in children]
    with contextlib.suppress(OSError):
        for name in os.listdir(metrics_dir):
            os.unlink(os.path.join(metrics_dir, name))
        os.rmdir(metrics_dir)
    return max(codes)
