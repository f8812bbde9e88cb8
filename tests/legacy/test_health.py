"""``GET /healthz``: 200 while the database answers, 503 when it does not."""

from __future__ import annotations

from flask.testing import FlaskClient

from legacy_monolith.app import create_app
from tests.legacy.helpers import body, db_of
from tests.support import procs


def test_healthz_ok(client: FlaskClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200 and body(r) == {"status": "ok"}


def test_healthz_503_with_a_dead_database() -> None:
    # Nothing listens on this port: the app still starts, and says it is unhealthy.
    app = create_app(f"postgresql://postgres@127.0.0.1:{procs.free_port()}/nowhere")
    try:
        client = app.test_client()
        r = client.get("/healthz")
        assert r.status_code == 503
        assert body(r) == {"status": "unavailable", "detail": "database unavailable"}
        # API calls answer a JSON 503 too, not a crash page.
        r = client.get("/api/customers/1")
        assert r.status_code == 503
        assert body(r) == {"error": "dependency_unavailable", "detail": "database unavailable"}
    finally:
        db_of(app).dispose()


def test_healthz_503_when_sqlite_cannot_open(tmp_path) -> None:
    # The "file" is a directory: SQLite cannot open it.
    (tmp_path / "db.sqlite").mkdir()
    app = create_app(f"sqlite:///{tmp_path}/db.sqlite")
    try:
        r = app.test_client().get("/healthz")
        assert r.status_code == 503 and body(r)["status"] == "unavailable"
    finally:
        db_of(app).dispose()
