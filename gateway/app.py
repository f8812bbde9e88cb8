"""The ONE wiring place: builds pools, breakers, the serving snapshot, the reloader, the proxy handler,
the idempotency store and the admin application from the Settings (STYLE.md principle 1).

`Gateway` owns its resources through one AsyncExitStack: each is registered as it is opened, so they
close in reverse order (listeners drain first, the access log is written last), on every exit path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from types import TracebackType

from aiohttp import web

from gateway.accesslog import AccessLog
from gateway.admin import AdminState, build_admin_app, is_loopback
from gateway.breaker_sync import BreakerSync
from gateway.breakers import BreakerRegistry
from gateway.config import ConfigError, ConfigIssue, load_config
from gateway.idempotency import IdempotencyStore, open_store, settle_pending, store_url
from gateway.listener import ProxyServer
from gateway.proxy import Proxy, SnapshotRef
from gateway.reload import PoolRetirement, Reloader
from gateway.runtime import PoolSet, build_snapshot
from gateway.settings import Settings
from gateway.shadow.mirror import open_mirror

__all__ = ["AdminTokenMissing", "Gateway", "build_gateway"]

log = logging.getLogger("gateway")


class AdminTokenMissing(RuntimeError):
    """Admin bound beyond loopback without GATEWAY_ADMIN_TOKEN: refuse to start."""


@dataclass
class Gateway:
    """One serving process's parts. `async with gateway:` starts the background work and closes
    everything on exit; `listen()` inside it opens the ports."""

    settings: Settings
    ref: SnapshotRef
    pools: PoolSet
    breakers: BreakerRegistry
    reloader: Reloader
    proxy: Proxy
    server: web.Server
    admin_app: web.Application
    access_log: AccessLog | None
    idempotency: IdempotencyStore
    breaker_sync: BreakerSync | None = None
    stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    async def __aenter__(self) -> Gateway:
        try:
            await self.start()
        except BaseException:
            await self.stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stack.aclose()

    async def start(self) -> None:
        """Open the resources in dependency order, each registering its close on the stack."""
        stack = self.stack
        if self.access_log is not None:
            stack.push_async_callback(self.access_log.aclose)  # last: the drained requests' lines
        stack.push_async_callback(self.pools.close)
        if self.breaker_sync is not None:
            await self.breaker_sync.start()
            stack.push_async_callback(self.breaker_sync.close)
        # The shadow store is opened once at start-up; a changed shadow_store needs a restart.
        # Closing drains queued copies (bounded), flushes the statistics and closes the store.
        mirror = await stack.enter_async_context(open_mirror(self.ref.current.config.shadow_store))
        self.proxy.mirror = mirror
        stack.callback(setattr, self.proxy, "mirror", None)
        # Opens no connection and no file yet: that happens on the first keyed request.
        await self.idempotency.start()
        stack.push_async_callback(self._close_idempotency)
        self.proxy.idempotency = self.idempotency
        stack.push_async_callback(self.reloader.close)  # pending reloads; pools in their grace
        watch = asyncio.get_running_loop().create_task(
            self.reloader.watch(self.settings.watch_interval)
        )
        stack.push_async_callback(_cancel, watch)

    async def listen(self, reuse_port: bool = False) -> None:
        """Open the proxy and admin ports; on exit the proxy drains (up to the grace period) first.
        Raises OSError when a port cannot be bound."""
        s = self.settings
        admin = web.AppRunner(self.admin_app, access_log=None, shutdown_timeout=5.0)
        await admin.setup()
        self.stack.push_async_callback(admin.cleanup)
        proxy = web.ServerRunner(self.server, shutdown_timeout=s.grace_period)
        await proxy.setup()
        self.stack.push_async_callback(self._drain, proxy)
        await web.TCPSite(proxy, s.host, s.port, reuse_port=reuse_port, backlog=1024).start()
        await web.TCPSite(admin, s.admin_host, s.admin_port, reuse_port=reuse_port).start()

    async def _drain(self, runner: web.BaseRunner) -> None:
        """Stop accepting, then wait for in-flight handlers up to the grace period."""
        self.proxy.draining = True
        await runner.cleanup()

    async def _close_idempotency(self) -> None:
        # Answers already on their way to the store are stored before it closes.
        self.proxy.idempotency = None
        await settle_pending()
        await self.idempotency.close()


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def build_gateway(settings: Settings) -> Gateway:
    """Load and validate routes.yaml and wire the whole gateway (raises ConfigError on a bad file).
    Opens nothing: `async with` the result does."""
    if not is_loopback(settings.admin_host) and not settings.admin_token:
        raise AdminTokenMissing(
            f"admin listener on {settings.admin_host} is not loopback: set GATEWAY_ADMIN_TOKEN"
        )
    routes = str(settings.routes)
    config = load_config(routes)
    pools = PoolSet()
    breakers = BreakerRegistry()
    ref = SnapshotRef(build_snapshot(config, pools, breakers))
    reloader = Reloader(routes, ref, pools, breakers, PoolRetirement(settings.grace_period))
    access_log = AccessLog(settings.log_format) if settings.access_log else None
    proxy = Proxy(ref, access_log)
    server = ProxyServer(
        proxy,
        header_timeout=settings.header_timeout,
        access_log=None,  # the gateway writes its own one-line JSON access log
        max_line_size=settings.max_line_size,
        max_field_size=settings.max_field_size,
        keepalive_timeout=settings.keepalive_timeout,
    )
    admin_app = build_admin_app(
        AdminState(ref=ref, reloader=reloader, breakers=breakers, proxy=proxy),
        settings.admin_token,  # a token, once set, is enforced on loopback too
    )
    sync = BreakerSync(settings.redis_url, breakers) if settings.redis_url else None
    # Chosen once at start-up, like the shadow store: a changed shadow_store needs a restart.
    idempotency_url = store_url(
        config.shadow_store,
        explicit=settings.idempotency_store,
        redis_url=settings.redis_url,
        base_dir=config.base_dir,
    )
    try:
        idempotency = open_store(idempotency_url)
    except ValueError as exc:
        raise ConfigError([ConfigIssue(0, "", f"IDEMPOTENCY_STORE: {exc}")], "<env>") from exc
    log.info("idempotency store: %r", idempotency)
    return Gateway(
        settings,
        ref,
        pools,
        breakers,
        reloader,
        proxy,
        server,
        admin_app,
        access_log,
        idempotency,
        sync,
    )
