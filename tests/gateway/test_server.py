"""The serve command as a process: start-up validation, access log, SIGTERM drain, --workers."""

from __future__ import annotations

import json
import signal
import threading
import time

import httpx

from tests.gateway.conftest import routes_for
from tests.support import procs


def test_invalid_routes_at_startup_exit_1(tmp_path):
    bad = tmp_path / "routes.yaml"
    bad.write_text("version: 1\nupstreams: {}\n")
    r = procs.run_cli(
        [
            "-m",
            "gateway",
            "serve",
            "--routes",
            str(bad),
            "--port",
            str(procs.free_port()),
            "--admin-port",
            str(procs.free_port()),
        ]
    )
    assert r.returncode == 1
    assert "routes.yaml" in r.stderr


def test_access_log_one_json_line_per_request(backends, start_gateway):
    gw = start_gateway(routes_for(backends))
    httpx.get(gw.url + "/some/path?q=1", headers={"X-Request-ID": "log-me-1"})
    httpx.get(gw.url + "/../bad")
    deadline = time.monotonic() + 5
    record = None
    while time.monotonic() < deadline and record is None:
        for line in gw.proc.log().splitlines():
            if line.startswith("{") and "log-me-1" in line:
                record = json.loads(line)
        time.sleep(0.1)
    assert record is not None, gw.proc.log()[-2000:]
    assert record["request_id"] == "log-me-1"
    assert record["method"] == "GET"
    assert record["path"] == "/some/path"
    assert record["route"] == "default"
    assert record["upstream"] == "a"
    assert record["status"] == 200
    assert record["bytes"] > 0
    assert record["duration_ms"] >= 0
    assert "shadow" in record


def test_sigterm_drains_in_flight_requests(backends, start_gateway):
    gw = start_gateway(routes_for(backends), "--grace-period", "10")
    result: dict[str, object] = {}
    key = f"drain-{time.monotonic_ns()}"

    def slow() -> None:
        try:
            r = httpx.get(f"{gw.url}/slow?ms=1500&key={key}", timeout=10)
            result["status"] = r.status_code
        except httpx.HTTPError as exc:
            result["error"] = repr(exc)

    t = threading.Thread(target=slow)
    t.start()
    deadline = time.monotonic() + 10
    # Wait until it is in flight at the upstream (a fixed sleep flakes under load).
    while backends["a"].hits(key) < 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    gw.proc.signal(signal.SIGTERM)
    t.join(10)
    assert result.get("status") == 200, result
    assert gw.proc.popen.wait(10) == 0
    try:
        httpx.get(gw.url + "/x", timeout=1)
        raise AssertionError("still accepting after drain")
    except httpx.ConnectError:
        pass


def test_workers_share_the_port_and_aggregate_metrics(backends, start_gateway):
    gw = start_gateway(routes_for(backends), "--workers", "2")
    children = open(f"/proc/{gw.proc.pid}/task/{gw.proc.pid}/children").read().split()
    assert len(children) == 2
    for _ in range(20):
        with httpx.Client() as c:
            c.get(gw.url + "/counted")
    text = httpx.get(gw.admin + "/metrics").text
    total = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("gateway_requests_total{") and 'route="default"' in line
    )
    assert (
        total == 20
    )  # both workers served (SO_REUSEPORT spreads connections); one exposition sums them


def test_slowloris_head_is_cut_off_but_slow_bodies_are_not(backends, start_gateway):
    import socket

    gw = start_gateway(routes_for(backends), "--header-timeout", "1")
    # A client that trickles its request head is cut off after --header-timeout.
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n")
        data = b""
        try:
            for _ in range(10):
                s.sendall(b"X-Slow: 1\r\n")
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
                time.sleep(0.3)
        except OSError:
            pass
    assert time.monotonic() - t0 < 4
    assert data.startswith(b"HTTP/1.1 408"), data[:100]

    # A connection that sends nothing at all is closed too.
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        assert s.recv(4096).startswith(b"HTTP/1.1 408")

    # A slow request BODY (head complete) is not subject to the head deadline.
    def slow_body():
        for _ in range(4):
            time.sleep(0.4)
            yield b"z" * 10

    r = httpx.post(gw.url + "/upload", content=slow_body(), timeout=10)
    assert r.status_code == 200 and r.json()["length"] == 40


def _cut_off_after(port: int) -> tuple[float, bytes]:
    """Trickle a request head; how long until the gateway answered and closed, and what it said."""
    import socket

    t0 = time.monotonic()
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(40):
                s.sendall(b"X-Slow: 1\r\n")
                s.settimeout(0.3)
                try:
                    chunk = s.recv(4096)
                except TimeoutError:
                    continue
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
    return time.monotonic() - t0, data


def test_workers_get_the_header_timeout(backends, start_gateway):
    gw = start_gateway(routes_for(backends), "--workers", "2", "--header-timeout", "1")
    # Each connection lands on either worker (SO_REUSEPORT): several, so both are tried.
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(_cut_off_after(gw.port))) for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 6
    for elapsed, data in results:
        assert elapsed < 5, results  # the default would be 10 s
        assert data.startswith(b"HTTP/1.1 408"), data[:100]


def test_workers_get_the_grace_period(backends, start_gateway):
    gw = start_gateway(routes_for(backends), "--workers", "2", "--grace-period", "1")
    key = f"grace-{time.monotonic_ns()}"
    outcomes: list[str] = []

    def slow() -> None:
        try:
            r = httpx.get(f"{gw.url}/slow?ms=20000&key={key}", timeout=40)
            outcomes.append(str(r.status_code))
        except httpx.HTTPError as exc:
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=slow) for _ in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 15
    while backends["a"].hits(key) < 4:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    t0 = time.monotonic()
    gw.proc.signal(signal.SIGTERM)
    assert gw.proc.popen.wait(30) == 0, gw.proc.log()[-5000:]
    assert time.monotonic() - t0 < 12  # cut after 1 s; the default 30 s would wait out the 20 s
    for t in threads:
        t.join(20)
    assert len(outcomes) == 4 and "200" not in outcomes, outcomes
