"""`--log-format json` as a process: every stdout/stderr line is one JSON object (SPEC §4.9), and the
access log has every request, in completion order, after a SIGTERM drain."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.gateway.conftest import routes_for
from tests.support import procs


class PipedGateway:
    """A gateway whose stdout and stderr share one pipe, as under a process supervisor."""

    def __init__(self, popen: subprocess.Popen[bytes], port: int, admin_port: int) -> None:
        self.popen = popen
        self.url = f"http://127.0.0.1:{port}"
        self.admin = f"http://127.0.0.1:{admin_port}"
        self.output = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        while chunk := self.popen.stdout.read1(1 << 16):
            self.output += chunk

    def lines(self) -> list[str]:
        return bytes(self.output).decode().splitlines()

    def stop(self, timeout: float = 20) -> int:
        self.popen.send_signal(signal.SIGTERM)
        code = self.popen.wait(timeout)
        self._reader.join(5)
        return code


@contextmanager
def piped_gateway(
    routes: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[PipedGateway]:
    port, admin_port = procs.free_port(), procs.free_port()
    cmd = [procs.PYTHON, "-m", "gateway", "serve", "--routes", str(routes), "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--admin-host", "127.0.0.1", "--admin-port", str(admin_port)]
    popen = subprocess.Popen(
        [*cmd, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "GATEWAY_WATCH_INTERVAL": "0.1", **(env or {})},
        cwd=str(procs.ROOT),
        start_new_session=True,
    )
    gw = PipedGateway(popen, port, admin_port)
    try:
        procs.wait_http(gw.admin + "/-/readyz", 60, popen)
        yield gw
    finally:
        if popen.poll() is None:
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait(10)


def _json_lines(lines: list[str]) -> list[dict[str, object]]:
    out = []
    for line in lines:
        record = json.loads(line)  # fails the test on any line that is not JSON
        assert isinstance(record, dict), line
        out.append(record)
    return out


def _wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_every_line_is_json_and_the_access_log_is_complete_and_in_order(backends, tmp_path):
    routes = tmp_path / "routes.yaml"
    routes.write_text(routes_for(backends))
    sent: list[str] = []
    with piped_gateway(routes, "--log-format", "json", "--grace-period", "10") as gw:
        with httpx.Client(base_url=gw.url, timeout=10) as client:

            def get(path: str) -> int:
                rid = f"seq-{len(sent)}"
                sent.append(rid)
                return client.get(path, headers={"X-Request-ID": rid}).status_code

            for i in range(50):
                assert get(f"/api/items/{i}") == 200
            assert get("/%2e%2e/etc") == 400
            # A reload that fails (multi-line message), by the watcher and by the admin API.
            routes.write_text(
                routes_for(backends, "routes:\n  - {name: x, path: /api/x, upstream: nope}\n")
            )
            _wait_for(lambda: httpx.get(gw.admin + "/-/routes").json()["last_error"])
            assert httpx.post(gw.admin + "/-/reload").status_code == 400
            routes.write_text("version: 1\nroutes: [\n")
            os.kill(gw.popen.pid, signal.SIGHUP)
            for i in range(50):
                assert get(f"/api/more/{i}") == 200
        # Requests still running at SIGTERM are drained, and their lines written.
        slow: list[int] = []

        key = f"drain-{time.monotonic_ns()}"

        def slow_get(rid: str) -> None:
            r = httpx.get(
                f"{gw.url}/slow?ms=2000&key={key}", headers={"X-Request-ID": rid}, timeout=20
            )
            slow.append(r.status_code)

        threads = [threading.Thread(target=slow_get, args=(f"slow-{i}",)) for i in range(3)]
        for t in threads:
            t.start()
        _wait_for(lambda: backends["a"].hits(key) == 3)  # all three are at the upstream
        assert gw.stop() == 0, "\n".join(x for x in gw.lines() if "request_id" not in x)
        for t in threads:
            t.join(20)
    assert slow == [200, 200, 200]
    records = _json_lines(gw.lines())
    access = [r["request_id"] for r in records if "request_id" in r]
    assert access[: len(sent)] == sent
    assert sorted(access[len(sent) :]) == ["slow-0", "slow-1", "slow-2"]
    own = [r for r in records if "request_id" not in r]
    assert all({"ts", "level", "logger", "message"} <= r.keys() for r in own), own
    messages = [str(r["message"]) for r in own]
    assert any(m.startswith("gateway serving on") for m in messages)
    rejected = [m for m in messages if "rejected" in m]
    assert len(rejected) >= 3 and any("nope" in m for m in rejected), rejected
    assert messages[-1] == "stopped"


def test_a_refused_start_is_logged_as_json(backends, tmp_path):
    bad = tmp_path / "routes.yaml"
    bad.write_text("version: 1\nupstreams: {}\n")
    args = ["-m", "gateway", "serve", "--routes", str(bad), "--port", "0", "--admin-port", "0"]
    result = procs.run_cli(args)
    assert result.returncode == 1
    (record,) = _json_lines(result.stderr.splitlines())
    assert record["level"] == "ERROR" and str(bad) in str(record["message"])
    assert record["errors"] and all(str(bad) in e for e in record["errors"])  # type: ignore[union-attr]
    # The same through --workers (the parent refuses once), and a refusal that is not the file's.
    result = procs.run_cli([*args, "--workers", "2"])
    assert result.returncode == 1 and len(_json_lines(result.stderr.splitlines())) == 1
    good = tmp_path / "good.yaml"
    good.write_text(routes_for(backends))
    result = procs.run_cli(
        ["-m", "gateway", "serve", "--routes", str(good), "--admin-host", "0.0.0.0"],
        env={"GATEWAY_ADMIN_TOKEN": ""},
    )
    assert result.returncode == 1
    (record,) = _json_lines(result.stderr.splitlines())
    assert "GATEWAY_ADMIN_TOKEN" in str(record["message"])


def test_workers_sharing_a_pipe_write_whole_json_lines(backends, tmp_path):
    routes = tmp_path / "routes.yaml"
    routes.write_text(routes_for(backends))
    sent = [f"w-{i}" for i in range(300)]
    with piped_gateway(routes, "--workers", "2") as gw:

        def fire(rids: list[str]) -> None:
            for rid in rids:
                # A fresh connection each time, so both workers serve.
                httpx.get(gw.url + "/x", headers={"X-Request-ID": rid})

        threads = [threading.Thread(target=fire, args=(sent[i::4],)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert gw.stop() == 0, "\n".join(x for x in gw.lines() if "request_id" not in x)
    records = _json_lines(gw.lines())
    assert sorted(str(r["request_id"]) for r in records if "request_id" in r) == sorted(sent)
    assert [r.get("message") for r in records].count("stopped") == 2  # each worker's last line


def test_tracebacks_python_prints_itself_are_json_too() -> None:
    script = """
import gc, threading, warnings
from gateway.logs import setup_logging
stop = setup_logging("json")
warnings.warn("a warning")
class Broken:
    def __del__(self):
        raise RuntimeError("in __del__")
Broken(); gc.collect()
t = threading.Thread(target=lambda: 1 / 0, name="worker-x"); t.start(); t.join()
raise ValueError("uncaught")
"""
    result = procs.run_cli(["-c", script])
    assert result.returncode == 1
    records = _json_lines(result.stderr.splitlines())
    assert [r["level"] for r in records] == ["WARNING", "ERROR", "ERROR", "CRITICAL"]
    assert "a warning" in str(records[0]["message"])
    assert "RuntimeError: in __del__" in str(records[1]["exc_info"])
    assert "worker-x" in str(records[2]["message"])
    assert "ValueError: uncaught" in str(records[3]["exc_info"])
