"""100 MB each way through the gateway in constant memory (SPEC §4.2, §5)."""

from __future__ import annotations

import hashlib

import httpx

from tests.gateway.conftest import routes_for

SIZE = 100 * 1024 * 1024


def _kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(field)


def test_100mb_download_and_upload_in_bounded_memory(backends, start_gateway):
    gw = start_gateway(routes_for(backends))
    pid = gw.proc.pid
    with httpx.Client(base_url=gw.url, timeout=60) as c:
        c.get("/warm")  # first request allocates the steady-state structures
        before = _kib(pid, "VmRSS")

        got = 0
        with c.stream("GET", f"/big?size={SIZE}") as r:
            assert r.status_code == 200
            for chunk in r.iter_raw():
                got += len(chunk)
        assert got == SIZE

        digest = hashlib.sha256()

        def body():
            piece = b"y" * (1024 * 1024)
            for _ in range(SIZE // len(piece)):
                digest.update(piece)
                yield piece

        r = c.post("/upload", content=body())
        assert r.status_code == 200
        assert r.json()["length"] == SIZE
        assert r.json()["sha256"] == digest.hexdigest()

        with c.stream("GET", f"/big?size={SIZE}&length=1") as r:
            assert int(r.headers["Content-Length"]) == SIZE
            assert sum(len(ch) for ch in r.iter_raw()) == SIZE

    peak = _kib(pid, "VmHWM")
    growth_mb = (peak - before) / 1024
    assert growth_mb < 50, f"gateway RSS grew {growth_mb:.1f} MB moving 300 MB"
