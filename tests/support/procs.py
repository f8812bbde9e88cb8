"""Real processes on loopback ports for tests: start, wait until ready, always stop."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from signal import SIGKILL, SIGTERM

import httpx

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 20.0, proc: subprocess.Popen | None = None) -> None:
    """Poll `url` until it answers any HTTP status below 500, or raise after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            r = httpx.get(url, timeout=1.0)
            if r.status_code < 500:
                return
            last = RuntimeError(f"{url} answered {r.status_code}")
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout}s: {last}")


def wait_port(port: int, host: str = "127.0.0.1", timeout: float = 20.0) -> None:
    """Wait until something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{host}:{port} not accepting after {timeout}s")


class Proc:
    """A started subprocess with its log file; `stop()` ends its whole process group."""

    def __init__(self, popen: subprocess.Popen, log_path: Path, name: str) -> None:
        self.popen = popen
        self.log_path = log_path
        self.name = name

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 10.0, sig: int = SIGTERM) -> int | None:
        if self.popen.poll() is None:
            self.signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(SIGKILL)
                self.popen.wait(5)
        return self.popen.returncode

    def kill(self) -> None:
        self.stop(timeout=5, sig=SIGKILL)


def start(
    cmd: Sequence[str],
    *,
    log_dir: Path,
    name: str,
    env: Mapping[str, str] | None = None,
    ready_url: str | None = None,
    ready_port: int | None = None,
    timeout: float = 30.0,
    cwd: Path | None = None,
) -> Proc:
    """Start `cmd` in its own process group, logging to `log_dir/name.log`, and wait until ready."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            list(cmd),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=str(cwd or ROOT),
            start_new_session=True,
        )
    proc = Proc(popen, log_path, name)
    try:
        if ready_url:
            wait_http(ready_url, timeout, popen)
        elif ready_port:
            wait_port(ready_port, timeout=timeout)
    except Exception as exc:
        proc.stop()
        raise RuntimeError(
            f"{name} did not start: {exc}\n--- log ---\n{proc.log()[-4000:]}"
        ) from exc
    return proc


@contextlib.contextmanager
def running(cmd: Sequence[str], **kwargs) -> Iterator[Proc]:
    """Context manager around `start` that always stops the process."""
    proc = start(cmd, **kwargs)
    try:
        yield proc
    finally:
        proc.stop()


def run_cli(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `python <args>` to completion and capture its output."""
    return subprocess.run(
        [PYTHON, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=str(cwd or ROOT),
    )
