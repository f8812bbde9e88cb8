"""The ONE wiring place: builds pools, breakers, the serving snapshot, the reloader, the proxy handler,
the idempotency store and the admin application from the serve options (STYLE.md principle 1)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field

from aiohttp import web

from gateway.accesslog import AccessLog
from gateway.admin import AdminState, build_admin_app, is_loopback
from gateway.breaker_sync import BreakerSync
from gateway.breakers import BreakerRegistry
from gateway.config import ConfigError, ConfigIssue, load_config
from gateway.idempotency import IdempotencyStore, open_store, settle_pending, store_url
from gateway.listener import ProxyServer
from gateway.proxy import Proxy, SnapshotRef
from gateway.reload import Reloader
from gateway.runtime import PoolSet, build_snapshot
from gateway.shadow.mirror import ShadowMirror, open_mirror

log = logging.getLogger("gateway")


@dataclass
class Settings:
    """What build_gateway needs (the CLI's ServeOptions map onto it)."""

    routes: str
    admin_host: str = "127.0.0.1"
    admin_token: str | None = field(default_factory=lambda: os.environ.get("GATEWAY_ADMIN_TOKEN"))
    log_format: str = "json"
    redis_url: str | None = field(default_factory=lambda: os.environ.get("REDIS_URL") or None)
    # Where idempotency records live; None: chosen by gateway.idempotency.store_url.
    idempotency_store: str | None = field(
        default_factory=lambda: os.environ.get("IDEMPOTENCY_STORE") or None
    )
    access_log: bool = True
    watch_interval: float = 0.5
    max_line_size: int = 8192  # request line (414 past it); must differ from max_field_size
    max_field_size: int = 8190  # one header field (431 past it)
    header_timeout: float = 10.0
    keepalive_timeout: float = 75.0  # idle keep-alive client connections (nginx's default)


class AdminTokenMissing(RuntimeError):
    """Admin bound beyond loopback without GATEWAY_ADMIN_TOKEN: refuse to start."""


@dataclass
class Gateway:
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
    _watch: asyncio.Task[None] | None = None
    _shadow: contextlib.AbstractAsyncContextManager[ShadowMirror] | None = None

    async def start_background(self) -> None:
        """Start the file watcher and the Redis breaker sync (call inside the running loop)."""
        self._watch = asyncio.get_running_loop().create_task(
            self.reloader.watch(self.settings.watch_interval)
        )
        if self.breaker_sync is not None:
            await self.breaker_sync.start()
        # Opens no connection and no file yet: that happens on the first keyed request.
        await self.idempotency.start()
        self.proxy.idempotency = self.idempotency
        # The shadow store is opened once at start-up; a changed shadow_store needs a restart.
        self._shadow = open_mirror(self.ref.current.config.shadow_store)
        self.proxy.mirror = await self._shadow.__aenter__()

    async def close(self) -> None:
        """Stop background work and close every upstream connection."""
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        await self.reloader.close()
        # Answers already on their way to the store are stored before it closes.
        self.proxy.idempotency = None
        await settle_pending()
        await self.idempotency.close()
        if self._shadow is not None:
            # Drains queued copies (bounded), flushes the statistics, closes the store.
            self.proxy.mirror = None
            await self._shadow.__aexit__(None, None, None)
        if self.breaker_sync is not None:
            await self.breaker_sync.close()
        await self.pools.close()
        if self.access_log is not None:
            self.access_log.flush()


def build_gateway(settings: Settings) -> Gateway:
    """Load and validate routes.yaml and wire the whole gateway (raises ConfigError on a bad file)."""
    if not is_loopback(settings.admin_host) and not settings.admin_token:
        raise AdminTokenMissing(
            f"admin listener on {settings.admin_host} is not loopback: set GATEWAY_ADMIN_TOKEN"
        )
    config = load_config(settings.routes)
    pools = PoolSet()
    breakers = BreakerRegistry()
    ref = SnapshotRef(build_snapshot(config, pools, breakers))
    reloader = Reloader(settings.routes, ref, pools, breakers)
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
