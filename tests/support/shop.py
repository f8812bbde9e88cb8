"""The legacy monolith as a real process for tests that need a shop to talk to."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from tests.support import procs

SEED_TIMEOUT = 180.0
START_TIMEOUT = 60.0


def seed_legacy(database_url: str) -> None:
    """`python -m legacy_monolith seed` on `database_url`; raises with its output unless it exits 0."""
    done = procs.run_cli(
        ["-m", "legacy_monolith", "seed"],
        env={"LEGACY_DATABASE_URL": database_url},
        timeout=SEED_TIMEOUT,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"legacy seed exited {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        )


@contextlib.contextmanager
def legacy_server(
    workdir: Path,
    database_url: str,
    *,
    name: str = "legacy",
    port: int | None = None,
    seed: bool = True,
    workers: int | None = None,
) -> Iterator[str]:
    """Serve the legacy monolith on `database_url` (seeded first unless `seed=False`); yields its URL."""
    if seed:
        seed_legacy(database_url)
    port = port or procs.free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [
        procs.PYTHON,
        "-m",
        "legacy_monolith",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    with procs.running(
        cmd,
        log_dir=workdir,
        name=name,
        env={"LEGACY_DATABASE_URL": database_url},
        ready_url=f"{base}/healthz",
        timeout=START_TIMEOUT,
    ):
        yield base
