"""`python -m extracted.orders sync` against a real legacy: idempotent, --check, --follow."""

from __future__ import annotations

from pathlib import Path

import httpx

from extracted.orders.adapters.db import make_engine
from extracted.orders.adapters.unit_of_work import SqlUnitOfWork
from extracted.orders.domain.model import OrderStatus, Origin
from tests.extracted.orders.stack import eventually, legacy, run_ok, sqlite_url
from tests.support import procs


def _get(url: str, order_id: int):  # noqa: ANN202 - test helper
    eng = make_engine(url)
    try:
        with SqlUnitOfWork(eng) as uow:
            return uow.orders.get(order_id)
    finally:
        eng.dispose()


def test_sync_copies_once_then_only_differences_and_check_reports_drift(tmp_path: Path) -> None:
    db = sqlite_url(tmp_path / "orders.db")
    with legacy(tmp_path) as legacy_url, httpx.Client(base_url=legacy_url, timeout=20) as client:
        env = {"ORDERS_DATABASE_URL": db, "LEGACY_URL": legacy_url}
        assert (
            run_ok(["-m", "extracted.orders", "sync"], env)
            .strip()
            .endswith("created=1000 updated=0 unchanged=0 skipped=0")
        )
        assert "created=0 updated=0 unchanged=1000" in run_ok(
            ["-m", "extracted.orders", "sync"], env
        )
        check = procs.run_cli(["-m", "extracted.orders", "sync", "--check"], env=env, timeout=120)
        assert check.returncode == 0 and "no differences" in check.stdout

        # The legacy, serving as fallback, places one order and cancels another.
        placed = client.post(
            "/api/orders", json={"customer_id": 3, "items": [{"sku": "SKU-0010", "qty": 1}]}
        )
        assert placed.status_code == 201, placed.text
        new_id = placed.json()["id"]
        assert client.post("/api/orders/1/cancel").status_code == 200
        check = procs.run_cli(["-m", "extracted.orders", "sync", "--check"], env=env, timeout=120)
        assert check.returncode == 1, check.stdout
        assert f"order {new_id} differs" in check.stdout and "order 1 differs" in check.stdout

        assert "created=1 updated=1 unchanged=999" in run_ok(
            ["-m", "extracted.orders", "sync"], env
        )
        copied = _get(db, new_id)
        assert copied is not None and copied.origin is Origin.LEGACY
        assert copied.to_json() == client.get(f"/api/orders/{new_id}").json()
        assert _get(db, 1).status is OrderStatus.CANCELLED
        check = procs.run_cli(["-m", "extracted.orders", "sync", "--check"], env=env, timeout=120)
        assert check.returncode == 0, check.stdout
        # Nothing copied ever goes to the outbox.
        eng = make_engine(db)
        try:
            with eng.connect() as conn:
                assert conn.exec_driver_sql("SELECT count(*) FROM outbox").scalar() == 0
        finally:
            eng.dispose()


def test_follow_waits_for_the_legacy_and_picks_up_its_changes(tmp_path: Path) -> None:
    db = sqlite_url(tmp_path / "orders.db")
    port = procs.free_port()
    env = {"ORDERS_DATABASE_URL": db, "LEGACY_URL": f"http://127.0.0.1:{port}"}
    cmd = [procs.PYTHON, "-m", "extracted.orders", "sync", "--follow", "--interval", "0.3"]
    with procs.running(cmd, log_dir=tmp_path, name="follow", env=env) as follower:
        # The legacy is not up yet: the follower keeps trying instead of crashing.
        eventually(lambda: "retrying" in follower.log(), what="a failed pass logged")
        assert follower.popen.poll() is None
        with legacy(tmp_path, port=port) as legacy_url, httpx.Client(base_url=legacy_url) as c:
            eventually(lambda: _get(db, 1000) is not None, timeout=60, what="initial copy")
            r = c.post(
                "/api/orders", json={"customer_id": 4, "items": [{"sku": "SKU-0011", "qty": 2}]}
            )
            assert r.status_code == 201
            eventually(lambda: _get(db, r.json()["id"]) is not None, what="the new legacy order")
        assert follower.popen.poll() is None
