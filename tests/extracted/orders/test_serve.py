"""`serve` listens only once the backfill is complete, and repairs reads of the legacy's ids."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx

from extracted.orders.adapters.db import make_engine
from extracted.orders.adapters.unit_of_work import SqlUnitOfWork
from extracted.orders.domain.model import Origin
from extracted.orders.service.backfill import JOB
from tests.extracted.orders.stack import eventually, legacy, sqlite_url
from tests.support import procs


def _refused(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _env(tmp_path: Path, legacy_port: int) -> dict[str, str]:
    return {
        "ORDERS_DATABASE_URL": sqlite_url(tmp_path / "orders.db"),
        "LEGACY_URL": f"http://127.0.0.1:{legacy_port}",
        "INVENTORY_URL": f"http://127.0.0.1:{procs.free_port()}",
        "ORDERS_BACKFILL_PAGE": "300",
        "EVENTS_DB": str(tmp_path / "events.db"),
        "REDIS_URL": "",
        "ORDERS_BREAKER_FAILURES": "100",  # this test checks answers, not the breaker
    }


def test_serve_waits_for_the_backfill_then_repairs_reads_of_missing_legacy_orders(
    tmp_path: Path,
) -> None:
    legacy_port, port = procs.free_port(), procs.free_port()
    env = _env(tmp_path, legacy_port)
    base = f"http://127.0.0.1:{port}"
    cmd = [procs.PYTHON, "-m", "extracted.orders", "serve", "--host", "127.0.0.1"]
    with procs.running([*cmd, "--port", str(port)], log_dir=tmp_path, name="orders", env=env) as p:
        # The legacy is down: the backfill retries, and nothing listens meanwhile, so the
        # gateway sees a refused connection and falls back instead of getting 404s.
        eventually(lambda: "retrying" in p.log(), what="a failed backfill attempt logged")
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            assert _refused(port), "serve listens before its backfill is complete"
            time.sleep(0.2)
        assert p.popen.poll() is None
        with legacy(tmp_path, port=legacy_port) as legacy_url, httpx.Client(timeout=20) as c:
            procs.wait_http(f"{base}/healthz", timeout=60, proc=p.popen)
            assert "backfill: 300 of" in p.log() and "backfill complete" in p.log()
            engine = make_engine(env["ORDERS_DATABASE_URL"])
            try:
                with SqlUnitOfWork(engine) as uow:
                    progress = uow.sync_state.get(JOB)
                total = c.get(f"{legacy_url}/api/orders", params={"limit": 1}).json()["total"]
                assert progress.complete and progress.cursor == total
                first = c.get(f"{base}/api/orders/1")
                assert first.json() == c.get(f"{legacy_url}/api/orders/1").json()

                # An order placed on the legacy that has not reached us (no consumer runs
                # here): served anyway, by asking the legacy once, and kept.
                placed = c.post(
                    f"{legacy_url}/api/orders",
                    json={"customer_id": 2, "items": [{"sku": "SKU-0003", "qty": 1}]},
                )
                assert placed.status_code == 201, placed.text
                new_id = placed.json()["id"]
                got = c.get(f"{base}/api/orders/{new_id}")
                assert got.status_code == 200 and got.json() == placed.json()
                with SqlUnitOfWork(engine) as uow:
                    kept = uow.orders.get(new_id)
                assert kept is not None and kept.origin is Origin.LEGACY
                missing = c.get(f"{base}/api/orders/{new_id + 1000}")
                assert missing.status_code == 404
                assert missing.json() == {
                    "error": "not_found",
                    "detail": f"order {new_id + 1000} not found",
                }
            finally:
                engine.dispose()
        # The legacy is gone: a miss cannot be told from lag, so 503 and the gateway falls
        # back (a GET is idempotent); what we hold is still served.
        with httpx.Client(timeout=20) as c:
            gone = c.get(f"{base}/api/orders/{new_id + 1}")
            assert gone.status_code == 503
            assert gone.json() == {
                "error": "dependency_unavailable",
                "detail": "legacy unavailable",
            }
            assert c.get(f"{base}/api/orders/{new_id}").status_code == 200
            assert c.get(f"{base}/api/orders/1000000999").status_code == 404  # ours: not asked


def test_serve_stops_cleanly_while_it_waits_for_the_legacy(tmp_path: Path) -> None:
    port = procs.free_port()
    cmd = [procs.PYTHON, "-m", "extracted.orders", "serve", "--port", str(port)]
    env = _env(tmp_path, procs.free_port())
    with procs.running(cmd, log_dir=tmp_path, name="orders", env=env) as proc:
        eventually(lambda: "retrying" in proc.log(), what="a failed backfill attempt logged")
        started = time.monotonic()
        proc.stop(timeout=10)
        assert time.monotonic() - started < 5.0 and proc.popen.returncode is not None
