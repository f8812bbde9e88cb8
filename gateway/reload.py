"""Hot reload of routes.yaml (SPEC §4.5): file watch (in place, atomic rename, symlink swap), SIGHUP and
admin POST /-/reload all end in `Reloader.reload()`, which validates the whole new file off the hot path and
swaps the snapshot in one assignment. An invalid file changes nothing but `last_error`."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gateway import metrics
from gateway.accesslog import now_iso
from gateway.breakers import BreakerRegistry
from gateway.config import Config, ConfigError, load_config
from gateway.proxy import SnapshotRef
from gateway.runtime import PoolSet, build_snapshot
from gateway.table import RouteTable

log = logging.getLogger("gateway.reload")


class Closable(Protocol):
    async def close(self) -> None: ...


class PoolRetirement:
    """Closes replaced upstream pools, each `grace` seconds after ITS reload: requests that still
    hold the previous table finish their exchanges on it, however soon another reload follows.
    `sleep` is injectable so tests move a clock instead of waiting."""

    def __init__(
        self, grace: float, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    ) -> None:
        self.grace = grace
        self._sleep = sleep
        self._pending: dict[asyncio.Task[None], Sequence[Closable]] = {}

    @property
    def pending(self) -> int:
        """Pools waiting out their grace."""
        return sum(len(pools) for pools in self._pending.values())

    def retire(self, pools: Sequence[Closable]) -> None:
        """Close `pools` after the grace period (call inside the running loop)."""
        if not pools:
            return
        task = asyncio.get_running_loop().create_task(self._close_later(pools))
        self._pending[task] = pools
        task.add_done_callback(self._pending.pop)

    async def _close_later(self, pools: Sequence[Closable]) -> None:
        await self._sleep(self.grace)
        await _close_all(pools)

    async def close(self) -> None:
        """Shutdown (in-flight requests have drained): close every waiting pool now."""
        waiting = list(self._pending.items())
        for task, _ in waiting:
            task.cancel()
        await asyncio.gather(*(task for task, _ in waiting), return_exceptions=True)
        for _, pools in waiting:
            await _close_all(pools)


async def _close_all(pools: Sequence[Closable]) -> None:
    for pool in pools:
        await pool.close()


@dataclass(frozen=True)
class ReloadResult:
    ok: bool
    changed: bool
    hash: str
    error: str | None = None


def _signature(path: str) -> tuple[Any, ...] | None:
    """What identifies the file's current content cheaply: follows symlinks (ConfigMap swaps)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size, os.path.realpath(path))


class Reloader:
    """Owns the routes file, the serving snapshot reference and the reload bookkeeping."""

    def __init__(
        self,
        path: str,
        ref: SnapshotRef,
        pools: PoolSet,
        breakers: BreakerRegistry,
        retirement: PoolRetirement | None = None,
    ) -> None:
        self.path = path
        self.ref = ref
        self.pools = pools
        self.breakers = breakers
        self.retirement = retirement or PoolRetirement(grace=30.0)
        self.last_error: dict[str, str] | None = None
        self.loaded_at = now_iso()
        self._lock = asyncio.Lock()
        self._signature = _signature(path)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def config(self) -> Config:
        return self.ref.current.config

    async def reload(self, trigger: str) -> ReloadResult:
        """Load, validate and compile the file; swap it in if it is valid and new."""
        async with self._lock:
            self._signature = _signature(self.path)
            current = self.ref.current.config
            try:
                config = await asyncio.to_thread(load_config, self.path)
                snapshot = None
                if config.hash != current.hash:
                    # Compiling is the expensive part (10,000 routes): off the loop. Wiring touches
                    # breakers and pools that the loop owns, so it stays on the loop.
                    table = await asyncio.to_thread(RouteTable.compile, config)
                    snapshot = build_snapshot(config, self.pools, self.breakers, table)
            except (ConfigError, OSError, ValueError) as exc:
                message = str(exc)
                self.last_error = {"message": message, "at": now_iso()}
                metrics.CONFIG_RELOADS.labels("failure").inc()
                log.error(
                    "reload (%s) of %s rejected; the previous table keeps serving:\n%s",
                    trigger,
                    self.path,
                    message,
                )
                return ReloadResult(False, False, current.hash, message)
            self.last_error = None
            metrics.CONFIG_RELOADS.labels("success").inc()
            if snapshot is None:
                log.info("reload (%s): %s unchanged (%s)", trigger, self.path, current.hash[:12])
                return ReloadResult(True, False, current.hash)
            self.ref.current = snapshot
            self.loaded_at = now_iso()
            log.info(
                "reload (%s): %s loaded, %d routes, hash %s",
                trigger,
                self.path,
                len(snapshot.table.routes),
                config.hash[:12],
            )
            # The pools this reload replaced; their grace starts now.
            retired, self.pools.retired = self.pools.retired, []
            self.retirement.retire(retired)
            return ReloadResult(True, True, config.hash)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def trigger(self, reason: str) -> None:
        """Reload in the background (signal handlers call this)."""
        self._spawn(self.reload(reason))

    async def watch(self, interval: float = 0.5, settle: float = 0.05) -> None:
        """Poll the file's identity; reload when it changed and stayed unchanged for `settle` seconds
        (a half-written file that is still growing is not loaded mid-write)."""
        while True:
            await asyncio.sleep(interval)
            sig = _signature(self.path)
            if sig == self._signature:
                continue
            await asyncio.sleep(settle)
            if _signature(self.path) != sig:
                continue  # still changing: look again on the next tick
            if sig is None:
                self._signature = None
                self.last_error = {"message": f"{self.path}: file is missing", "at": now_iso()}
                metrics.CONFIG_RELOADS.labels("failure").inc()
                log.error("%s disappeared; the previous table keeps serving", self.path)
                continue
            await self.reload("watch")

    async def close(self) -> None:
        """Stop pending reloads and close the pools still in their grace period."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.retirement.close()
