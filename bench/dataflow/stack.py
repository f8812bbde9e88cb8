"""The stack's processes: the Procfile's commands on free ports, started and stopped by PID.

Each process gets its own session (so its process group id is its PID); stopping sends SIGTERM
to that group, then SIGKILL after a grace period. CPU time is read from /proc for a process and
all its descendants (gunicorn's workers), plus what its reaped children used.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROCFILE = ROOT / "Procfile"
PIDFILE = Path(__file__).resolve().parent / ".pids"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Procfile entries this benchmark runs, in start order after the legacy is up.
SERVICES = ("inventory", "orders")
SYNCERS = ("legacy-consumer", "inventory-sync", "orders-sync")
SYNC_PROCESSES = ("orders-sync", "inventory-sync", "legacy-consumer")


def read_procfile(path: Path = PROCFILE) -> dict[str, str]:
    """`name: command` lines of the Procfile (comments and blank lines skipped)."""
    entries: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, command = line.partition(":")
        if sep:
            entries[name.strip()] = command.strip()
    return entries


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def command_argv(command: str, ports: dict[str, int]) -> list[str]:
    """The Procfile command with our python and our ports (`--port`, `--admin-port`)."""
    argv = shlex.split(command)
    if argv and argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    for i, arg in enumerate(argv[:-1]):
        if arg == "--port" and "port" in ports:
            argv[i + 1] = str(ports["port"])
        elif arg == "--admin-port" and "admin-port" in ports:
            argv[i + 1] = str(ports["admin-port"])
        elif arg == "--host":
            argv[i + 1] = "127.0.0.1"  # loopback only, whatever the Procfile says
    return argv


def rewrite_routes(text: str, urls: dict[str, str]) -> str:
    """routes.yaml with the upstream URLs of the demo ports replaced by ours."""
    defaults = {"legacy": 8000, "orders": 8101, "inventory": 8102}
    for name, port in defaults.items():
        if name in urls:
            text = re.sub(rf"http://127\.0\.0\.1:{port}\b", urls[name], text)
    return text


# --- /proc -------------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # fields after "(comm)": state is field 3, so field n is rest[n - 3]
    return raw[raw.rindex(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (identifies it across PID reuse)."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def _all_parents() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields:
                parents[int(entry.name)] = int(fields[1])
    return parents


def tree_cpu_seconds(roots: dict[str, int]) -> dict[str, float]:
    """user+sys CPU seconds of each root PID and its descendants (live ones and reaped ones)."""
    parents = _all_parents()
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    out: dict[str, float] = {}
    for name, root in roots.items():
        ticks = 0
        stack = [root]
        seen: set[int] = set()
        while stack:
            pid = stack.pop()
            if pid in seen:
                continue
            seen.add(pid)
            fields = _stat_fields(pid)
            if fields is None:
                continue
            # utime, stime, cutime, cstime (fields 14-17)
            ticks += sum(int(v) for v in fields[11:15])
            stack.extend(children.get(pid, ()))
        out[name] = ticks / CLK_TCK
    return out


def machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine have used since boot (from /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    # user nice system idle iowait irq softirq steal ...
    values = [int(v) for v in fields]
    busy = sum(values[:3]) + sum(values[5:8])
    return busy / CLK_TCK


def self_cpu_seconds() -> float:
    """This benchmark's own CPU seconds (its threads included)."""
    t = os.times()
    return t.user + t.system


# --- processes ---------------------------------------------------------------------------------


@dataclass
class Proc:
    """One started process (the leader of its own process group)."""

    name: str
    argv: list[str]
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class Stack:
    """Processes started in `workdir` with `env`; `stop_all` stops every one of them."""

    workdir: Path
    env: dict[str, str]
    procs: dict[str, Proc] = field(default_factory=dict)
    stopped: list[Proc] = field(default_factory=list)

    def start(self, name: str, argv: list[str], *, env: dict[str, str] | None = None) -> Proc:
        log = self.workdir / f"{name}.log"
        with open(log, "ab") as out:
            popen = subprocess.Popen(
                argv,
                cwd=self.workdir,
                env=env or self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = Proc(name, argv, popen, log)
        self.procs[name] = proc
        _record_pid(proc)
        return proc

    def run(self, name: str, argv: list[str], *, timeout: float) -> tuple[int, float, str]:
        """Run a one-shot command to completion (bounded); returns (exit code, seconds, output)."""
        t0 = time.perf_counter()
        proc = self.start(name, argv)
        try:
            rc = proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(name)
            rc = -1
        elapsed = time.perf_counter() - t0
        self.procs.pop(name, None)
        _forget_pid(proc.pid)
        return rc, elapsed, proc.tail(10)

    def stop(self, name: str, grace: float = 15.0) -> float:
        """Stop one process group; returns the seconds it took."""
        proc = self.procs.pop(name, None)
        if proc is None:
            return 0.0
        t0 = time.monotonic()
        stop_group(proc.pid, proc.popen, grace)
        _forget_pid(proc.pid)
        self.stopped.append(proc)
        return time.monotonic() - t0

    def stop_all(self, grace: float = 15.0) -> dict[str, float]:
        """SIGTERM every group at once (the legacy after the others), wait, SIGKILL leftovers.

        Returns how long each process took to exit."""
        took: dict[str, float] = {}
        first = [n for n in self.procs if n != "legacy"]
        for batch in (first, ["legacy"] if "legacy" in self.procs else []):
            t0 = time.monotonic()
            for name in batch:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.procs[name].pid, signal.SIGTERM)
            while time.monotonic() - t0 < grace:
                for name in batch:
                    if name not in took and self.procs[name].popen.poll() is not None:
                        took[name] = time.monotonic() - t0
                if all(name in took for name in batch):
                    break
                time.sleep(0.02)
            for name in batch:
                took.setdefault(name, time.monotonic() - t0)
                self.stop(name, grace=1.0)  # the group's stragglers; SIGKILL if still there
        return took

    def cpu(self, names: list[str] | None = None) -> dict[str, float]:
        wanted = names if names is not None else list(self.procs)
        return tree_cpu_seconds({n: self.procs[n].pid for n in wanted if n in self.procs})


def stop_group(pgid: int, popen: subprocess.Popen[bytes] | None, grace: float) -> None:
    """SIGTERM the process group `pgid` (that we created), wait, then SIGKILL what is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if popen is not None:
            popen.poll()
        if not _group_alive(pgid):
            break
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    if popen is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    # zombies of ours count as gone
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields and int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


# --- the PID file: a run killed hard is cleaned up by the next one ------------------------------


def _record_pid(proc: Proc) -> None:
    ticks = start_ticks(proc.pid)
    with open(PIDFILE, "a") as f:
        f.write(f"{proc.pid} {ticks} {proc.name}\n")


def _forget_pid(pid: int) -> None:
    try:
        lines = PIDFILE.read_text().splitlines()
    except OSError:
        return
    keep = [ln for ln in lines if ln.split(" ", 1)[0] != str(pid)]
    if keep:
        PIDFILE.write_text("\n".join(keep) + "\n")
    else:
        PIDFILE.unlink(missing_ok=True)


def stop_leftovers() -> list[str]:
    """Stop the process groups an earlier, killed run recorded (same PID and start time only)."""
    stopped: list[str] = []
    try:
        lines = PIDFILE.read_text().splitlines()
    except OSError:
        return stopped
    for line in lines:
        parts = line.split()
        if len(parts) < 3 or not parts[0].isdigit():
            continue
        pid, ticks, name = int(parts[0]), parts[1], parts[2]
        if str(start_ticks(pid)) == ticks:
            stop_group(pid, None, 5.0)
            stopped.append(f"{name} (pid {pid})")
    PIDFILE.unlink(missing_ok=True)
    return stopped
