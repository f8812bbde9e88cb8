"""The whole stack as `make run` starts it (Procfile via honcho), on free ports in a scratch directory."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import procs

DEFAULT_PORTS = {"legacy": 8000, "orders": 8101, "inventory": 8102, "gateway": 8080, "admin": 9901}


@dataclass
class Stack:
    ports: dict[str, int]
    proc: procs.Proc
    workdir: Path

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"


def _swap_ports(text: str, ports: dict[str, int]) -> str:
    for name, default in DEFAULT_PORTS.items():
        text = re.sub(rf"(?<![0-9]){default}(?![0-9])", str(ports[name]), text)
    return text


def wait_for(check, timeout: float, what: str, interval: float = 0.2):
    """Poll `check()` until it returns a truthy value; fail with `what` after `timeout` seconds."""
    import time

    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Seed, then `honcho start` the repository's own Procfile and routes.yaml (ports swapped)."""
    work = tmp_path_factory.mktemp("stack")
    ports = {name: procs.free_port() for name in DEFAULT_PORTS}
    (work / "Procfile").write_text(_swap_ports((procs.ROOT / "Procfile").read_text(), ports))
    (work / "routes.yaml").write_text(_swap_ports((procs.ROOT / "routes.yaml").read_text(), ports))
    env = {
        "PATH": f"{Path(procs.PYTHON).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "LEGACY_URL": f"http://127.0.0.1:{ports['legacy']}",
        "INVENTORY_URL": f"http://127.0.0.1:{ports['inventory']}",
        "REDIS_URL": "",  # the embedded defaults, exactly as `make run` on a fresh machine
        "STOCK_AUTHORITY": "inventory",  # as `make run` sets it
        "PYTHONPATH": str(procs.ROOT),
    }
    seeded = procs.run_cli(["-m", "legacy_monolith", "seed"], env=env, cwd=work, timeout=300)
    assert seeded.returncode == 0, seeded.stderr
    proc = procs.start(
        [procs.PYTHON, "-m", "honcho", "start", "-f", "Procfile"],
        log_dir=work,
        name="honcho",
        env=env,
        cwd=work,
        ready_url=f"http://127.0.0.1:{ports['admin']}/-/readyz",
        timeout=60,
    )
    stack = Stack(ports, proc, work)
    try:
        for name in ("legacy", "orders", "inventory"):
            wait_for(
                lambda n=name: httpx.get(stack.url(n) + "/healthz", timeout=2).status_code == 200,
                60,
                f"{name} /healthz",
            )
        yield stack
    finally:
        proc.stop(timeout=30, sig=signal.SIGINT)  # Ctrl-C, as a person stops `make run`
