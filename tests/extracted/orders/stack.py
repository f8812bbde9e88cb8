"""Real processes for the orders end-to-end tests: legacy, inventory and orders on free ports."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support import procs
from tests.support.shop import legacy_server

SEED_TIMEOUT = 180.0
START_TIMEOUT = 60.0


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def run_ok(args: list[str], env: Mapping[str, str], timeout: float = SEED_TIMEOUT) -> str:
    """Run `python <args>`, assert exit 0, return stdout."""
    done = procs.run_cli(args, env=env, timeout=timeout)
    assert done.returncode == 0, f"{args} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@contextlib.contextmanager
def legacy(workdir: Path, *, port: int | None = None, seed: bool = True) -> Iterator[str]:
    """A seeded legacy monolith on SQLite; yields its base URL."""
    with legacy_server(
        workdir, sqlite_url(workdir / "legacy.db"), port=port, seed=seed, workers=1
    ) as base:
        yield base


@dataclass
class Stack:
    """A running legacy + inventory + orders, and the environment that wires them."""

    workdir: Path
    legacy_url: str
    inventory_url: str
    orders_url: str
    orders_env: dict[str, str]

    def orders(
        self, name: str, **env: str
    ) -> contextlib.AbstractContextManager[tuple[str, procs.Proc]]:
        """Another orders process on a free port (same database unless overridden)."""
        return serve_orders(self.workdir, name, {**self.orders_env, **env})


@contextlib.contextmanager
def serve_orders(
    workdir: Path, name: str, env: Mapping[str, str], *, wait: bool = True
) -> Iterator[tuple[str, procs.Proc]]:
    port = procs.free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [
        procs.PYTHON,
        "-m",
        "extracted.orders",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with procs.running(
        cmd,
        log_dir=workdir,
        name=name,
        env=dict(env),
        ready_url=f"{base}/healthz" if wait else None,
        timeout=START_TIMEOUT,
    ) as proc:
        yield base, proc


@contextlib.contextmanager
def stack(workdir: Path, **orders_env: str) -> Iterator[Stack]:
    """Seeded legacy, synced inventory and orders, all serving."""
    with legacy(workdir) as legacy_url:
        inv_port = procs.free_port()
        inventory_url = f"http://127.0.0.1:{inv_port}"
        inv_env = {
            "INVENTORY_DATABASE_URL": sqlite_url(workdir / "inventory.db"),
            "LEGACY_URL": legacy_url,
            "EVENTS_DB": str(workdir / "events.db"),
            "REDIS_URL": "",
        }
        env = {
            "ORDERS_DATABASE_URL": sqlite_url(workdir / "orders.db"),
            "LEGACY_URL": legacy_url,
            "INVENTORY_URL": inventory_url,
            "EVENTS_DB": str(workdir / "events.db"),
            "REDIS_URL": "",  # the SQLite log, even where the test run has REDIS_URL set
            **orders_env,
        }
        run_ok(["-m", "extracted.inventory", "sync"], inv_env)
        run_ok(["-m", "extracted.orders", "sync"], env)
        inv_cmd = [
            procs.PYTHON,
            "-m",
            "extracted.inventory",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(inv_port),
        ]
        with (
            procs.running(
                inv_cmd,
                log_dir=workdir,
                name="inventory",
                env=inv_env,
                ready_url=f"{inventory_url}/healthz",
                timeout=START_TIMEOUT,
            ),
            serve_orders(workdir, "orders", env) as (orders_url, _),
        ):
            yield Stack(workdir, legacy_url, inventory_url, orders_url, env)


def eventually(check: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Poll `check` until true, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout}s")


def reservations(client: httpx.Client, inventory_url: str, sku: str) -> list[dict]:
    """Every reservation of `sku` in inventory."""
    r = client.get(f"{inventory_url}/api/inventory/{sku}/reservations", params={"limit": 500})
    assert r.status_code == 200, r.text
    return list(r.json()["items"])
