"""The repository's Procfile, one process per entry (not honcho: it stops everything when one dies).

Every entry runs in its own process group with its own log file, on free ports swapped into the
Procfile and routes.yaml as tests/e2e/conftest.py does, so any one of them can be SIGKILLed and
started again alone with the same command and environment.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.e2e.conftest import DEFAULT_PORTS, _swap_ports
from tests.support import procs, services

START_TIMEOUT = 90.0
COMPLAINT = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback|\[ERROR\]")
LOG_TAIL = 3000

# What "up" means for each entry; the consumers have no port: started is up.
READY_PATH = {
    "legacy": ("legacy", "/healthz"),
    "inventory": ("inventory", "/healthz"),
    "orders": ("orders", "/healthz"),
    "gateway": ("admin", "/-/readyz"),
}


def parse_procfile(text: str) -> dict[str, list[str]]:
    """`name: command` lines -> {name: argv}, `python` being this interpreter."""
    entries: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, command = line.partition(":")
        argv = shlex.split(command)
        if argv and argv[0] == "python":
            argv[0] = procs.PYTHON
        entries[name.strip()] = argv
    return entries


@dataclass
class Backing:
    """Where the stack keeps its data: SQLite files + the SQLite event log, or PostgreSQL + Redis."""

    name: str
    env: dict[str, str]
    databases: list[str] = field(default_factory=list)
    redis_url: str | None = None
    stream: str | None = None
    prefix: str | None = None

    def cleanup(self) -> None:
        """Drop the fresh databases and delete the run's Redis keys."""
        for url in self.databases:
            with contextlib.suppress(Exception):
                services.drop_database(url)
        if self.redis_url:
            import redis

            client = redis.Redis.from_url(self.redis_url, socket_timeout=5)
            try:
                keys = [self.stream, *client.scan_iter(match=f"{self.prefix}*", count=500)]
                client.delete(*[k for k in keys if k])
            finally:
                client.close()


def sqlite_backing(work: Path) -> Backing:
    """Every database a SQLite file in the scratch dir, events in the embedded SQLite log."""
    var = work / "var"
    var.mkdir(parents=True, exist_ok=True)
    return Backing(
        "sqlite",
        {
            "LEGACY_DATABASE_URL": f"sqlite:///{var / 'legacy.db'}",
            "ORDERS_DATABASE_URL": f"sqlite:///{var / 'orders.db'}",
            "INVENTORY_DATABASE_URL": f"sqlite:///{var / 'inventory.db'}",
            "EVENTS_DB": str(var / "events.db"),
            "REDIS_URL": "",
        },
    )


def postgres_backing(redis_url: str) -> Backing:
    """Three fresh PostgreSQL databases, a unique Redis stream and gateway key prefix."""
    run = uuid.uuid4().hex[:10]
    backing = Backing(
        "postgres",
        {},
        redis_url=redis_url,
        stream=f"chaos-{run}:shop.events",
        prefix=f"chaos-{run}",
    )
    try:
        for role in ("legacy", "orders", "inventory"):
            url = services.create_database(f"chaos_{role}")
            backing.databases.append(url)
            backing.env[f"{role.upper()}_DATABASE_URL"] = url
    except Exception:
        backing.cleanup()
        raise
    backing.env.update(
        REDIS_URL=redis_url,
        EVENTS_STREAM=backing.stream or "",
        GATEWAY_REDIS_PREFIX=backing.prefix or "",
        EVENTS_DB="",
    )
    return backing


class Stack:
    """The seven Procfile entries, started, killed and restarted one at a time."""

    def __init__(self, work: Path, backing: Backing) -> None:
        self.work = work
        self.backing = backing
        self.ports = {name: procs.free_port() for name in DEFAULT_PORTS}
        (work / "Procfile").write_text(
            _swap_ports((procs.ROOT / "Procfile").read_text(), self.ports)
        )
        (work / "routes.yaml").write_text(
            _swap_ports((procs.ROOT / "routes.yaml").read_text(), self.ports)
        )
        self.commands = parse_procfile((work / "Procfile").read_text())
        self.env = {
            "PATH": f"{Path(procs.PYTHON).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(procs.ROOT),
            "STOCK_AUTHORITY": "inventory",
            "LEGACY_URL": self.url("legacy"),
            "INVENTORY_URL": self.url("inventory"),
            "ORDERS_URL": self.url("orders"),
            "LEGACY_PENDING_GRACE": "3",
            "ORDERS_PENDING_GRACE": "3",
            "ORDERS_RECONCILE_INTERVAL": "1",
            "EVENTS_CLAIM_IDLE_MS": "2000",
            **backing.env,
        }
        # Extra environment of single entries (fault injection); the rest share `env`.
        self.overrides: dict[str, dict[str, str]] = {}
        self.procs: dict[str, procs.Proc] = {}
        self.starts: dict[str, int] = {}

    def url(self, name: str) -> str:
        """Base URL of `legacy`, `orders`, `inventory`, `gateway` or `admin`."""
        return f"http://127.0.0.1:{self.ports[name]}"

    # --- life cycle -----------------------------------------------------------------------------

    def seed(self) -> None:
        """`python -m legacy_monolith seed` with the stack's environment."""
        done = procs.run_cli(
            ["-m", "legacy_monolith", "seed"], env=self.env, cwd=self.work, timeout=300
        )
        assert done.returncode == 0, f"seed failed:\n{done.stdout}\n{done.stderr}"

    def spawn(self, name: str) -> procs.Proc:
        """Start entry `name` (log appended to `name.log`) without waiting for it."""
        self.starts[name] = self.starts.get(name, 0) + 1
        env = {**self.env, **self.overrides.get(name, {})}
        proc = procs.start(
            self.commands[name], log_dir=self.work, name=name, env=env, cwd=self.work
        )
        self.procs[name] = proc
        return proc

    def wait_ready(self, name: str, timeout: float = START_TIMEOUT) -> None:
        """Until entry `name` answers its readiness URL (or is alive, for the consumers)."""
        proc = self.procs[name]
        ready = READY_PATH.get(name)
        try:
            if ready is None:
                time.sleep(0.3)
                if proc.popen.poll() is not None:
                    raise RuntimeError(f"exited with {proc.popen.returncode}")
                return
            url = self.url(ready[0]) + ready[1]
            deadline = time.monotonic() + timeout
            while True:
                if proc.popen.poll() is not None:
                    raise RuntimeError(f"exited with {proc.popen.returncode}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(url, timeout=2.0).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{url} not 200 after {timeout}s")
                time.sleep(0.1)
        except Exception as exc:
            raise RuntimeError(f"{name} not ready: {exc}\n{self.tail(name)}") from exc

    def start_all(self, names: Iterable[str] | None = None) -> None:
        """Every entry (or those named) at once, as honcho does; then wait until each is ready."""
        names = list(self.commands if names is None else names)
        for name in names:
            self.spawn(name)
        with ThreadPoolExecutor(len(names)) as pool:
            list(pool.map(self.wait_ready, names))

    def kill(self, name: str) -> None:
        """SIGKILL the entry's whole process group (gunicorn's workers included) and reap it."""
        proc = self.procs[name]
        proc.signal(signal.SIGKILL)
        proc.popen.wait(10)

    def restart(self, name: str) -> None:
        """Start the entry again with the same command and environment; wait until ready."""
        self.spawn(name)
        self.wait_ready(name)

    def ensure_all_up(self) -> list[str]:
        """Restart any entry that is not running (returns their names)."""
        dead = [n for n, p in self.procs.items() if p.popen.poll() is not None]
        for name in dead:
            self.restart(name)
        return dead

    def stop_all(self) -> None:
        """SIGTERM every entry (SIGKILL after a grace period)."""
        with ThreadPoolExecutor(max(1, len(self.procs))) as pool:
            list(pool.map(lambda p: p.stop(timeout=10), self.procs.values()))

    # --- diagnostics ----------------------------------------------------------------------------

    def tail(self, name: str, chars: int = LOG_TAIL) -> str:
        """The end of entry `name`'s log."""
        proc = self.procs.get(name)
        text = proc.log() if proc else ""
        return f"----- {name}.log (last {chars} chars) -----\n{text[-chars:]}"

    def log_marks(self) -> dict[str, int]:
        """How long each entry's log is now (see `complaints_since`)."""
        return {name: len(proc.log()) for name, proc in self.procs.items()}

    def complaints_since(self, marks: dict[str, int]) -> list[str]:
        """Warning, error and traceback lines logged by any entry since `marks`."""
        found = []
        for name, proc in self.procs.items():
            for line in proc.log()[marks.get(name, 0) :].splitlines():
                if COMPLAINT.search(line):
                    found.append(f"{name}: {line[:300]}")
        return found

    def tails(self, chars: int = LOG_TAIL) -> str:
        """The end of every entry's log, and its last tracebacks, for a failure message."""
        return "\n".join(self.tail(name, chars) + self.tracebacks(name) for name in self.commands)

    def tracebacks(self, name: str, last: int = 3, chars: int = 2500) -> str:
        """The last tracebacks in entry `name`'s log (they scroll out of the tail)."""
        proc = self.procs.get(name)
        text = proc.log() if proc else ""
        starts = [i for i in range(len(text)) if text.startswith("Traceback", i)][-last:]
        return "".join(
            f"\n----- {name}.log traceback at char {i} -----\n{text[i : i + chars]}" for i in starts
        )

    def run(self, args: list[str], timeout: float = 120.0, env: Mapping[str, str] | None = None):
        """`python <args>` in the scratch dir with the stack's environment."""
        return procs.run_cli(args, env={**self.env, **(env or {})}, cwd=self.work, timeout=timeout)


@contextlib.contextmanager
def launched(
    work: Path, backing: Backing, configure: Callable[[Stack], Iterable[str] | None] | None = None
) -> Iterator[Stack]:
    """Seed, start every Procfile entry, yield; always stop them and clean the backing up.

    `configure(stack)` may set `stack.overrides` and return the names of the entries to start.
    """
    stack = Stack(work, backing)
    try:
        stack.seed()
        stack.start_all(configure(stack) if configure else None)
        yield stack
    finally:
        try:
            stack.stop_all()
        finally:
            backing.cleanup()
