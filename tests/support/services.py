"""Access to the real PostgreSQL and Redis servers: skip with a reason, or fail under REQUIRE_SERVICES=1."""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest

DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"


def missing(what: str, why: object) -> None:
    """Skip (visible reason) or, when REQUIRE_SERVICES=1, fail."""
    msg = f"{what} not available: {why}"
    if REQUIRE_SERVICES:
        pytest.fail(f"{msg} (REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(msg)


def _with_db(url: str, db: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + db))


def postgres_available() -> str | None:
    """None when PostgreSQL answers at DATABASE_URL, else the reason it does not."""
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - the postgres extra is installed by make test
        return f"psycopg not installed ({exc})"
    try:
        with psycopg.connect(DATABASE_URL, connect_timeout=3) as conn:
            conn.execute("select 1")
    except Exception as exc:
        return str(exc).strip()
    return None


def create_database(prefix: str = "t") -> str:
    """Create a fresh, empty PostgreSQL database and return its URL (postgresql://...)."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(DATABASE_URL, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return _with_db(DATABASE_URL, name)


def drop_database(url: str) -> None:
    """Drop a database made by `create_database`, ending its connections first."""
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(DATABASE_URL, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_available() -> str | None:
    """None when Redis answers PING at REDIS_URL, else the reason it does not."""
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
        client.ping()
        client.close()
    except Exception as exc:
        return str(exc).strip()
    return None
