"""Targets of the shop contract suite: ways to start one implementation of SPEC §3.

A target is a *factory*: a context manager function `factory(workdir) -> Target`
that starts real processes on loopback ports, yields a `Target` once every one
answers, and stops them (and drops any database it made) when the block ends.
`TARGETS` maps a target name to its factory; the `shop` fixture in
`tests/contract/conftest.py` is parametrised over `DEFAULT_TARGETS`, or over
the names in `CONTRACT_TARGETS=legacy-sqlite,extracted-sqlite,...` (`all`: every one).

A `Target` knows, per resource ("customers" | "inventory" | "orders"), the base
URL that serves `/api/<resource>...` and whether it serves that resource at all.
Every seeded target holds the deterministic seed data (SKU-0001..SKU-0200,
customers 1..50, orders 1..1000) before the first test runs.

Adding a target
---------------
Write a factory and register it in `TARGETS`; no test changes are needed.
`extracted_sqlite` below is the worked example: it keeps a seeded legacy up
(orders asks it whether a customer exists, and `sync` copies the seed data from
it through its HTTP API), starts inventory and orders on their own databases,
syncs them, and yields a Target whose `urls` name only the resources it serves.
Resources missing from `urls` are unsupported: customers exist only on the
legacy, so `supports("customers")` is False there and the customer tests skip.
Pass `new_ids=NEW_SERVICE_IDS` for services that allocate ids from 1e9 up.
For PostgreSQL, wrap the factory body in `postgres_databases(n)`: it skips (or
fails under REQUIRE_SERVICES=1) when PostgreSQL is down, and drops the databases
afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import procs, services
from tests.support.shop import legacy_server

RESOURCES = ("customers", "inventory", "orders")
# Seeding 1000 orders on a busy 2-core machine can take a while; bound it anyway.
SEED_TIMEOUT = 180.0
START_TIMEOUT = 60.0
ID_BOUND = 1_000_000_000
LEGACY_IDS = range(1, ID_BOUND)
NEW_SERVICE_IDS = range(ID_BOUND, 2**63)


@dataclass(frozen=True)
class Target:
    """A running implementation of the shop contract."""

    name: str
    urls: Mapping[str, str]
    log_paths: Sequence[Path] = field(default_factory=tuple)
    # Ids this implementation allocates to new records: the legacy below 1_000_000_000,
    # the new services from 1_000_000_000 up (extracted targets pass NEW_SERVICE_IDS).
    new_ids: range = field(default_factory=lambda: LEGACY_IDS)

    def supports(self, resource: str) -> bool:
        """Whether this target serves `/api/<resource>`."""
        return resource in self.urls

    def url_for(self, resource: str) -> str:
        """Base URL (no trailing slash) of the server answering `/api/<resource>...`."""
        if resource not in RESOURCES:
            raise ValueError(f"unknown resource {resource!r}; expected one of {RESOURCES}")
        if resource not in self.urls:
            raise LookupError(f"target {self.name} does not serve {resource}")
        return self.urls[resource]

    def logs(self, tail: int = 4000) -> str:
        """The tail of every server log, for failure messages."""
        parts = []
        for path in self.log_paths:
            try:
                text = path.read_text(errors="replace")
            except OSError:
                text = ""
            parts.append(f"--- {path.name} ---\n{text[-tail:]}")
        return "\n".join(parts)


TargetFactory = Callable[[Path], AbstractContextManager[Target]]


def sqlite_url(path: Path) -> str:
    """A SQLAlchemy-style URL for a SQLite file."""
    return f"sqlite:///{path}"


def run_checked(
    args: Sequence[str], *, env: Mapping[str, str], timeout: float, cwd: Path | None = None
) -> None:
    """Run `python <args>` and raise with its output unless it exits 0."""
    done = procs.run_cli(args, env=env, timeout=timeout, cwd=cwd)
    if done.returncode != 0:
        raise RuntimeError(
            f"`python {' '.join(args)}` exited {done.returncode}\n"
            f"--- stdout ---\n{done.stdout[-4000:]}\n--- stderr ---\n{done.stderr[-4000:]}"
        )


@contextlib.contextmanager
def postgres_databases(count: int) -> Iterator[list[str]]:
    """`count` fresh PostgreSQL databases (postgresql:// URLs), dropped afterwards.

    Skips with the reason (fails under REQUIRE_SERVICES=1) when PostgreSQL is down.
    """
    why = services.postgres_available()
    if why:
        services.missing("PostgreSQL", why)
    made: list[str] = []
    try:
        for _ in range(count):
            made.append(services.create_database("contract"))
        yield made
    finally:
        for url in made:
            services.drop_database(url)


@contextlib.contextmanager
def _legacy_target(name: str, workdir: Path, database_url: str) -> Iterator[Target]:
    with legacy_server(workdir, database_url) as base:
        # The legacy serves every resource from one server.
        yield Target(
            name=name,
            urls=dict.fromkeys(RESOURCES, base),
            log_paths=(workdir / "legacy.log",),
        )


@contextlib.contextmanager
def legacy_sqlite(workdir: Path) -> Iterator[Target]:
    """The legacy monolith on a fresh SQLite file."""
    with _legacy_target("legacy-sqlite", workdir, sqlite_url(workdir / "db" / "legacy.db")) as t:
        yield t


@contextlib.contextmanager
def legacy_postgres(workdir: Path) -> Iterator[Target]:
    """The legacy monolith on a fresh PostgreSQL database (dropped afterwards)."""
    with (
        postgres_databases(1) as (database_url,),
        _legacy_target("legacy-postgres", workdir, database_url) as t,
    ):
        yield t


@contextlib.contextmanager
def _service(workdir: Path, service: str, env: Mapping[str, str]) -> Iterator[str]:
    """Serve `extracted.<service>` on a free port; yields its base URL."""
    port = procs.free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [procs.PYTHON, "-m", f"extracted.{service}", "serve", "--host", "127.0.0.1"]
    with procs.running(
        [*cmd, "--port", str(port)],
        log_dir=workdir,
        name=service,
        env=env,
        ready_url=f"{base}/healthz",
        timeout=START_TIMEOUT,
        # Anything a service writes under a relative var/ stays in the test's directory.
        cwd=workdir,
    ):
        yield base


@contextlib.contextmanager
def _extracted_target(name: str, workdir: Path, db_urls: Mapping[str, str]) -> Iterator[Target]:
    with legacy_server(workdir, db_urls["legacy"]) as legacy_url:
        common = {
            "LEGACY_URL": legacy_url,
            # Events go to a private SQLite log, never to a shared Redis stream.
            "REDIS_URL": "",
            "EVENTS_DB": str(workdir / "var" / "events.db"),
            # The inventory service is the stock authority, as in the demo stack (`make run`):
            # the suite holds its own writes to the contract, not a forward to the legacy's.
            "STOCK_AUTHORITY": "inventory",
        }
        inv_env = {**common, "INVENTORY_DATABASE_URL": db_urls["inventory"]}
        with _service(workdir, "inventory", inv_env) as inv_url:
            sync = ["-m", "extracted.inventory", "sync"]
            run_checked(sync, env=inv_env, timeout=SEED_TIMEOUT, cwd=workdir)
            ord_env = {**common, "ORDERS_DATABASE_URL": db_urls["orders"], "INVENTORY_URL": inv_url}
            with _service(workdir, "orders", ord_env) as ord_url:
                sync = ["-m", "extracted.orders", "sync"]
                run_checked(sync, env=ord_env, timeout=SEED_TIMEOUT, cwd=workdir)
                yield Target(
                    name=name,
                    urls={"inventory": inv_url, "orders": ord_url},
                    log_paths=tuple(
                        workdir / f"{n}.log" for n in ("legacy", "inventory", "orders")
                    ),
                    new_ids=NEW_SERVICE_IDS,
                )


_SERVICES = ("legacy", "inventory", "orders")


@contextlib.contextmanager
def extracted_sqlite(workdir: Path) -> Iterator[Target]:
    """The extracted inventory and orders services on SQLite files, synced from a legacy."""
    urls = {n: sqlite_url(workdir / "db" / f"{n}.db") for n in _SERVICES}
    with _extracted_target("extracted-sqlite", workdir, urls) as t:
        yield t


@contextlib.contextmanager
def extracted_postgres(workdir: Path) -> Iterator[Target]:
    """The extracted services on PostgreSQL, one database each (dropped afterwards)."""
    with postgres_databases(len(_SERVICES)) as made:
        with _extracted_target(
            "extracted-postgres", workdir, dict(zip(_SERVICES, made, strict=True))
        ) as t:
            yield t


TARGETS: dict[str, TargetFactory] = {
    "legacy-sqlite": legacy_sqlite,
    "legacy-postgres": legacy_postgres,
    "extracted-sqlite": extracted_sqlite,
    "extracted-postgres": extracted_postgres,
}
# What runs when CONTRACT_TARGETS is unset (the lead decides when the extracted ones join).
DEFAULT_TARGETS = ("legacy-sqlite", "legacy-postgres", "extracted-sqlite", "extracted-postgres")
