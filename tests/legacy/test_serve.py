"""``python -m legacy_monolith serve`` as a real process (gunicorn) after ``seed``."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson

from tests.support import procs


def test_serve_answers_api_and_pages_after_seed(tmp_path: Path) -> None:
    env = {"LEGACY_DATABASE_URL": f"sqlite:///{tmp_path}/var/legacy.db"}
    seeded = procs.run_cli(["-m", "legacy_monolith", "seed"], env=env, cwd=tmp_path)
    assert seeded.returncode == 0, seeded.stderr
    port = procs.free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [procs.PYTHON, "-m", "legacy_monolith", "serve", "--port", str(port), "--workers", "2"]
    with procs.running(
        cmd, log_dir=tmp_path / "logs", name="legacy", env=env, cwd=tmp_path,
        ready_url=f"{base}/healthz", timeout=60,
    ) as proc:  # fmt: skip
        with httpx.Client(base_url=base, timeout=10) as client:
            r = client.get("/api/orders/1")
            assert r.status_code == 200, proc.log()
            assert r.headers["content-type"] == "application/json"
            order = orjson.loads(r.content)
            assert order["id"] == 1 and order["status"] == "placed"
            assert r.content == orjson.dumps(order)

            home = client.get("/")
            assert home.status_code == 200 and home.headers["content-type"].startswith("text/html")
            assert "SKU-0001" in home.text and "SKU-0200" in home.text

            head = client.head("/api/orders/1")
            assert head.status_code == 200 and head.content == b""

            # Writes through the real server land in the same database the seed filled.
            placed = client.post(
                "/api/orders", json={"customer_id": 1, "items": [{"sku": "SKU-0001", "qty": 1}]}
            )
            assert placed.status_code == 201, placed.text
            assert placed.json()["id"] == 1001
            assert client.get("/healthz").json() == {"status": "ok"}
        # SIGTERM: gunicorn shuts its workers down gracefully and exits 0.
        assert proc.stop(timeout=20) == 0, proc.log()
