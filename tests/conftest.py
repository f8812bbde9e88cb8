"""Shared fixtures: real PostgreSQL / Redis (skip with reason, or fail with REQUIRE_SERVICES=1)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.support import services


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The admin URL of the real PostgreSQL server (skips/fails when none answers)."""
    why = services.postgres_available()
    if why:
        services.missing("PostgreSQL", why)
    return services.DATABASE_URL


@pytest.fixture
def make_pg_database(postgres_url: str) -> Iterator[Callable[[], str]]:
    """Factory of fresh, empty PostgreSQL databases, all dropped at teardown."""
    made: list[str] = []

    def make() -> str:
        url = services.create_database()
        made.append(url)
        return url

    yield make
    for url in made:
        services.drop_database(url)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The URL of the real Redis server (skips/fails when none answers)."""
    why = services.redis_available()
    if why:
        services.missing("Redis", why)
    return services.REDIS_URL


@pytest.fixture
def redis_prefix() -> str:
    """A unique key prefix so parallel tests never share Redis keys."""
    return f"test-{uuid.uuid4().hex[:10]}"
