"""The `shop` fixture: every contract test runs once per target (see targets.py).

One server (set) per target per process: under xdist each worker starts its own,
and pytest stops a target before starting the next parameter's.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator

import httpx
import pytest

from tests.contract.helpers import Shop
from tests.contract.targets import DEFAULT_TARGETS, TARGETS


def selected_targets() -> list[str]:
    """Target names to run: DEFAULT_TARGETS, or CONTRACT_TARGETS (a comma list, or `all`)."""
    raw = os.environ.get("CONTRACT_TARGETS", "").strip()
    if raw == "all":
        return list(TARGETS)
    names = [n.strip() for n in raw.split(",") if n.strip()] or list(DEFAULT_TARGETS)
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        raise pytest.UsageError(
            f"CONTRACT_TARGETS names unknown targets {unknown}; known: {list(TARGETS)}"
        )
    return names


def _params() -> list[object]:
    # The `postgres` marker lets `-m "not postgres"` deselect the PostgreSQL targets.
    return [
        pytest.param(name, marks=pytest.mark.postgres) if "postgres" in name else name
        for name in selected_targets()
    ]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the target's server logs to a failed test's report."""
    report: pytest.TestReport = yield
    shop = getattr(item, "funcargs", {}).get("shop")
    if report.failed and report.when == "call" and isinstance(shop, Shop):
        report.sections.append((f"{shop.name} server logs", shop.target.logs()))
    return report


@pytest.fixture(scope="session", params=_params())
def shop(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Shop]:
    """A running, seeded implementation of the shop contract and a client for it."""
    factory = TARGETS[request.param]
    workdir = tmp_path_factory.mktemp(request.param)
    with factory(workdir) as target, httpx.Client(timeout=httpx.Timeout(20.0)) as client:
        yield Shop(target, client)
