"""Fixtures for gateway integration tests: real backend servers and a real gateway process."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import procs


@dataclass
class Backend:
    name: str
    port: int
    proc: procs.Proc

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hits(self, key: str) -> int:
        return int(httpx.get(f"{self.url}/hits", timeout=5).json()["hits"].get(key, 0))


def start_backend(name: str, log_dir: Path) -> Backend:
    port = procs.free_port()
    proc = procs.start(
        [procs.PYTHON, "-m", "tests.support.backend", "--port", str(port), "--name", name],
        log_dir=log_dir,
        name=f"backend-{name}",
        ready_port=port,
    )
    return Backend(name, port, proc)


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Backend]]:
    """Three real upstream servers, `a`, `b` and `c`, for the module's tests."""
    log_dir = tmp_path_factory.mktemp("backends")
    started: dict[str, Backend] = {}
    try:
        for name in ("a", "b", "c"):
            started[name] = start_backend(name, log_dir)
        yield started
    finally:
        for b in started.values():
            b.proc.stop()


@dataclass
class GatewayProc:
    proc: procs.Proc
    port: int
    admin_port: int
    routes: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def write_routes(self, text: str) -> None:
        self.routes.write_text(textwrap.dedent(text))


def dead_port() -> int:
    """A loopback port with nothing listening (connection refused)."""
    return procs.free_port()


def launch_gateway(
    path: Path,
    log_dir: Path,
    *args: str,
    env: dict[str, str] | None = None,
    name: str = "gateway",
) -> GatewayProc:
    """Start `python -m gateway serve` for the routes file at `path` on free loopback ports."""
    port, admin_port = procs.free_port(), procs.free_port()
    cmd = [procs.PYTHON, "-m", "gateway", "serve", "--routes", str(path), "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--admin-host", "127.0.0.1", "--admin-port", str(admin_port)]
    proc = procs.start(
        [*cmd, *args],
        log_dir=log_dir,
        name=name,
        env={"GATEWAY_WATCH_INTERVAL": "0.1", **(env or {})},
        ready_url=f"http://127.0.0.1:{admin_port}/-/readyz",
    )
    return GatewayProc(proc, port, admin_port, path)


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Callable[..., GatewayProc]]:
    """Factory: write routes.yaml and start a gateway process; every one started is stopped."""
    started: list[GatewayProc] = []

    def start(
        routes: str | None,
        *args: str,
        env: dict[str, str] | None = None,
        name: str = "gateway",
        routes_path: Path | None = None,
    ) -> GatewayProc:
        path = routes_path or tmp_path / f"{name}-routes.yaml"
        if routes is not None:
            path.write_text(textwrap.dedent(routes))
        gw = launch_gateway(path, tmp_path, *args, env=env, name=name)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.proc.stop()


def routes_for(backends: dict[str, Backend], body: str = "", **defaults: str) -> str:
    """A routes.yaml with upstreams a/b/c (and `dead`) and `defaults.upstream: a`, plus `body`."""
    timeout = defaults.get("timeout", "5s")
    return (
        "version: 1\n"
        "upstreams:\n"
        + "".join(f'  {n}: {{url: "{b.url}"}}\n' for n, b in backends.items())
        + f'  dead: {{url: "http://127.0.0.1:{dead_port()}", connect_timeout: 1s}}\n'
        + "defaults:\n  upstream: a\n"
        + f"  timeout: {timeout}\n"
        + "  breaker: {failures: 3, reset_after: 1s}\n"
        + textwrap.dedent(body)
    )
