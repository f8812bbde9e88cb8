"""Orchestration: for each legacy size, start a stack, measure, stop it; then the report."""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from bench.dataflow import data, report
from bench.dataflow.drain import GROUPS, FlowProbe
from bench.dataflow.load import Load, LoadStats, Probe, Watcher, wait_http
from bench.dataflow.stack import (
    ROOT,
    SERVICES,
    SYNC_PROCESSES,
    SYNCERS,
    Stack,
    command_argv,
    free_port,
    machine_busy_seconds,
    read_procfile,
    rewrite_routes,
    self_cpu_seconds,
    stop_leftovers,
)

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
# Variables of the stack that must come from this benchmark only, never from the caller's shell.
_OWN_PREFIXES = ("LEGACY_", "ORDERS_", "INVENTORY_", "EVENTS_", "GATEWAY_", "SHADOW_")
_OWN_NAMES = ("REDIS_URL", "DATABASE_URL", "STOCK_AUTHORITY", "LOG_LEVEL")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.dataflow",
        description="Data-flow benchmark (SPEC I5): change lag, cost per change at two legacy "
        "sizes, idle CPU of the stack.",
    )
    p.add_argument("--quick", action="store_true", help="small numbers (a ~2 min smoke run)")
    p.add_argument("--redis", action="store_true", help="Redis stream + PostgreSQL databases")
    p.add_argument("--redis-url", default=DEFAULT_REDIS)
    p.add_argument("--pg-url", default=DEFAULT_PG, help="server for the fresh databases")
    p.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], help="legacy order counts"
    )
    p.add_argument("--rate", type=float, default=20.0, help="demo load, operations/s")
    p.add_argument("--load-seconds", type=float, help="demo load duration (default 60; quick 10)")
    p.add_argument("--cancel-share", type=float, default=0.1)
    p.add_argument("--stock-rate", type=float, default=2.0, help="stock probes/s during the load")
    p.add_argument("--changes", type=int, help="changes for the cost (default 500; quick 100)")
    p.add_argument("--cost-rate", type=float, default=20.0, help="changes/s for the cost")
    p.add_argument("--idle-seconds", type=float, help="idle CPU window (default 60; quick 10)")
    p.add_argument("--settle", type=float, default=5.0, help="quiet seconds before idle")
    p.add_argument("--watch", choices=("db", "http"), default="db", help="how lag is observed")
    p.add_argument("--poll-ms", type=float, default=10.0, help="watcher interval")
    p.add_argument("--no-gateway", action="store_true", help="do not start the gateway")
    p.add_argument("--keep", action="store_true", help="keep the scratch directories")
    return p


def _git_describe() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}{' + uncommitted changes' if dirty else ''}"


class Meter:
    """CPU of the stack's processes over a window, and how busy the rest of the machine was."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.cpu0 = stack.cpu()
        self.busy0 = machine_busy_seconds()
        self.self0 = self_cpu_seconds()
        self.t0 = time.monotonic()
        self.self_cores = 0.0

    def stop(self) -> tuple[dict[str, float], float, float]:
        """(CPU seconds per process, wall seconds, cores the machine's other processes used)."""
        cpu1 = self.stack.cpu()
        wall = time.monotonic() - self.t0
        used = {n: cpu1[n] - self.cpu0.get(n, 0.0) for n in cpu1}
        busy = machine_busy_seconds() - self.busy0
        mine = self_cpu_seconds() - self.self0
        others = busy - sum(used.values()) - mine
        self.self_cores = mine / wall if wall > 0 else 0.0
        return used, wall, max(0.0, others) / wall if wall > 0 else 0.0


def _say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _on_sigterm(_sig: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quick = args.quick
    args.sizes = args.sizes or ([200, 10_000] if quick else [200, 200_000])
    args.load_seconds = args.load_seconds or (10.0 if quick else 60.0)
    args.changes = args.changes or (100 if quick else 500)
    args.idle_seconds = (
        args.idle_seconds if args.idle_seconds is not None else (10.0 if quick else 60.0)
    )
    backend = "redis+postgresql" if args.redis else "sqlite"
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in background
    for line in stop_leftovers():
        _say(f"stopped a leftover of an earlier run: {line}")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    header = [
        f"bench/dataflow {stamp}: backend {backend}, STOCK_AUTHORITY=inventory, "
        f"{'--quick' if quick else 'full run'}",
        f"commit {_git_describe()}; {os.cpu_count()} CPUs, {platform.python_version()}, "
        f"{platform.platform()}",
        f"demo load: {args.rate:g} ops/s for {args.load_seconds:g} s (half legacy, half orders "
        f"service; {args.cancel_share:.0%} cancels) + stock probes {args.stock_rate:g}/s; "
        f"cost: {args.changes} changes at {args.cost_rate:g}/s; idle {args.idle_seconds:g} s; "
        f"lag watched via {args.watch} every {args.poll_ms:g} ms",
    ]
    for line in header:
        print(line, flush=True)
    results: list[report.SizeResult] = []
    status = 0
    try:
        for size in args.sizes:
            result = report.SizeResult(size=size, backend=backend)
            results.append(result)
            run_size(result, args, stamp)
    except KeyboardInterrupt:
        status = 130
        _say("interrupted: every process was stopped; partial results below")
    except Exception as exc:  # a stack that does not come up: report what there is
        status = 1
        results[-1].notes.append(f"run aborted: {type(exc).__name__}: {exc}")
        _say(f"aborted: {type(exc).__name__}: {exc}")
    sections = "\n\n".join(report.render_size(r) for r in results)
    text, md = report.render_summary(results, backend) if results else ("", "")
    tail = {0: "", 1: "\n(ABORTED: partial results)", 130: "\n(INTERRUPTED: partial results)"}
    body = f"{sections}\n\n{text}\n\nmarkdown:\n{md}\n{tail[status]}"
    print("\n" + body, flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{stamp}{'-redis' if args.redis else ''}{'-quick' if quick else ''}.txt"
    out.write_text("\n".join(header) + "\n\n" + body)
    print(f"written: {out.relative_to(ROOT)}", flush=True)
    return status


def _stack_env(
    workdir: Path, dbs: data.Databases, urls: dict[str, str], redis: dict[str, str] | None
) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_OWN_PREFIXES) and k not in _OWN_NAMES
    }
    venv_bin = str(Path(sys.executable).parent)
    env.update(
        PATH=f"{venv_bin}:{env.get('PATH', '/usr/bin:/bin')}",
        PYTHONUNBUFFERED="1",
        STOCK_AUTHORITY="inventory",
        LEGACY_DATABASE_URL=dbs.legacy,
        ORDERS_DATABASE_URL=dbs.orders,
        INVENTORY_DATABASE_URL=dbs.inventory,
        EVENTS_DB=str(workdir / "events.db"),
        LEGACY_URL=urls["legacy"],
        INVENTORY_URL=urls["inventory"],
        ORDERS_URL=urls["orders"],
    )
    if redis:
        env.update(redis)
    return env


def run_size(result: report.SizeResult, args: argparse.Namespace, stamp: str) -> None:
    """One stack for one legacy size: start, measure into `result`, stop everything."""
    size = result.size
    suffix = f"{'-redis' if args.redis else ''}{'-quick' if args.quick else ''}"
    result.csv = str(RESULTS / f"{stamp}{suffix}-lag-{size}.csv")
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-dataflow-{size}-"))
    _say(f"legacy size {size:,}: scratch dir {workdir}")
    procfile = read_procfile()
    ports = {name: free_port() for name in ("legacy", "inventory", "orders", "gateway")}
    ports["gateway-admin"] = free_port()
    urls = {name: f"http://127.0.0.1:{ports[name]}" for name in ("legacy", "inventory", "orders")}
    tag = f"bdf{stamp.replace('-', '')}s{size}"
    redis_env: dict[str, str] | None = None
    dbs = data.sqlite_databases(workdir)
    if args.redis:
        redis_env = {
            "REDIS_URL": args.redis_url,
            "EVENTS_STREAM": f"{tag}.events",
            "GATEWAY_REDIS_PREFIX": tag,
        }
    stack = Stack(workdir, {})
    flow: FlowProbe | None = None
    held: dict[str, Watcher] = {}
    failed = True
    try:
        if args.redis:
            dbs = data.postgres_databases(args.pg_url, tag)
        stack.env = _stack_env(workdir, dbs, urls, redis_env)
        flow = FlowProbe(
            db_urls=dbs.urls(),
            events_db=None if args.redis else workdir / "events.db",
            redis_url=args.redis_url if args.redis else None,
            stream=redis_env["EVENTS_STREAM"] if redis_env else None,
        )
        _run_stack(stack, procfile, ports, urls, dbs, flow, args, result, workdir, held)
        failed = False
    finally:
        # a second Ctrl-C or SIGTERM must not cut the clean-up short
        old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        old_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if "watcher" in held:
            held["watcher"].stop()
        _say(f"stopping {len(stack.procs)} processes")
        took = stack.stop_all()
        _say("stopped: " + ", ".join(f"{n} {s:.1f} s" for n, s in took.items()))
        if flow is not None:
            flow.close()
        if args.redis:
            assert redis_env is not None
            try:
                data.redis_cleanup(
                    args.redis_url, redis_env["EVENTS_STREAM"], redis_env["GATEWAY_REDIS_PREFIX"]
                )
            except Exception as exc:
                result.notes.append(f"redis cleanup failed: {exc}")
            try:
                dbs.drop()
            except Exception as exc:
                result.notes.append(f"dropping the databases failed: {exc}")
        if args.keep or failed or result.notes:
            _say(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)


def _check_alive(stack: Stack, result: report.SizeResult, when: str) -> None:
    for proc in list(stack.procs.values()):
        if not proc.alive():
            result.notes.append(
                f"{proc.name} exited ({proc.popen.returncode}) {when}; its log ends:\n"
                + proc.tail(15)
            )
            stack.procs.pop(proc.name, None)


def _run_stack(
    stack: Stack,
    procfile: dict[str, str],
    ports: dict[str, int],
    urls: dict[str, str],
    dbs: data.Databases,
    flow: FlowProbe,
    args: argparse.Namespace,
    result: report.SizeResult,
    workdir: Path,
    held: dict[str, Watcher],
) -> None:
    py = sys.executable
    # --- data ----------------------------------------------------------------------------------
    rc, secs, out = stack.run("seed", [py, "-m", "legacy_monolith", "seed"], timeout=600)
    if rc != 0:
        raise RuntimeError(f"seed failed ({rc}):\n{out}")
    t0 = time.perf_counter()
    size = result.size
    done = data.resize_legacy_orders(dbs.legacy, size)
    result.setup.append(
        f"seed {secs:.1f} s; sized to {size:,} orders in {time.perf_counter() - t0:.1f} s ({done})"
    )
    skus, customers = _catalogue(dbs.legacy)

    # --- the legacy, then the timed backfills, then the rest ---------------------------------
    def start(name: str) -> None:
        extra = {"port": ports[name]} if name in ports else {}
        if name == "gateway":
            extra["admin-port"] = ports["gateway-admin"]
        stack.start(name, command_argv(procfile[name], extra))

    start("legacy")
    if not _wait(stack, "legacy", f"{urls['legacy']}/healthz", 120):
        raise RuntimeError("the legacy did not come up:\n" + stack.procs["legacy"].tail())
    rc, secs, out = stack.run(
        "orders-backfill", [py, "-m", "extracted.orders", "sync"], timeout=3600
    )
    result.backfill_orders_s = secs
    result.setup.append(f"backfill `extracted.orders sync`: {secs:.1f} s (exit {rc}): {_last(out)}")
    rc, secs, out = stack.run(
        "inventory-backfill", [py, "-m", "extracted.inventory", "sync"], timeout=1200
    )
    result.backfill_inventory_s = secs
    result.setup.append(
        f"backfill `extracted.inventory sync`: {secs:.1f} s (exit {rc}): {_last(out)}"
    )
    for name in SERVICES:
        start(name)
    for name in SERVICES:
        if not _wait(stack, name, f"{urls[name]}/healthz", 600):
            raise RuntimeError(f"{name} did not come up:\n" + stack.procs[name].tail())
    for name in SYNCERS:
        start(name)
    if not args.no_gateway and "gateway" in procfile:
        routes = (ROOT / "routes.yaml").read_text()
        (workdir / "routes.yaml").write_text(rewrite_routes(routes, urls))
        start("gateway")
        gw = f"http://127.0.0.1:{ports['gateway-admin']}/-/healthz"
        if not _wait(stack, "gateway", gw, 60):
            result.notes.append("the gateway did not come up:\n" + stack.procs["gateway"].tail())
    # consumers: wait until their groups exist on the bus (bounded), then until all is quiet
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        st = flow.state()
        if all(g in st.lag for g in GROUPS):
            break
        time.sleep(0.2)
    st = flow.state()
    result.groups = sorted(st.lag)
    missing = [g for g in GROUPS if g not in st.lag]
    if missing:
        result.notes.append(
            f"no consumer group {', '.join(missing)} on the bus after 60 s "
            "(that consumer does not read the event bus)"
        )
    drained, st, _ = flow.wait_drained(st, 120, extra=0.5)
    if not drained:
        result.notes.append(f"the stack did not settle after start-up: {st.describe()}")
    _check_alive(stack, result, "during start-up")
    _say(f"stack up: {', '.join(stack.procs)}; {st.describe()}")

    watcher = Watcher(
        db_urls=dbs.urls(),
        http_urls=urls,
        mode=args.watch,
        interval=args.poll_ms / 1000,
    )
    held["watcher"] = watcher
    watcher.start()

    # --- cost per change ---------------------------------------------------------------------
    _say(f"cost: {args.changes} changes at {args.cost_rate:g}/s")
    baseline = flow.state()
    meter = Meter(stack)
    load_seed = 1000 + size
    secs, stats = asyncio.run(
        _drive(urls, watcher, skus, customers, load_seed, args, args.cost_rate, args.changes, 0.0)
    )
    watcher.wait_idle(60)
    drained, st, drain_s = flow.wait_drained(baseline, 120, extra=0.5)
    cpu1, _wall, others = meter.stop()
    result.others["cost"] = others
    result.cost_changes = stats.changes
    result.cost_requests = f"{stats.summary()}\n  latency ms: {stats.latency_summary()}"
    result.cost_seconds = secs
    result.cost_drain_s = drain_s
    result.cost_drained = drained
    order = [*SYNC_PROCESSES, *[n for n in cpu1 if n not in SYNC_PROCESSES]]
    result.cost_cpu = {n: cpu1[n] for n in order if n in cpu1}
    cost_probes = watcher.take()
    missed = sum(1 for p in cost_probes if p.lag is None)
    if missed:
        result.notes.append(f"cost phase: {missed} of {len(cost_probes)} changes never showed")
    if not drained:
        result.notes.append(f"cost phase did not drain within 120 s: {st.describe()}")
    result.notes += [f"cost phase: {e}" for e in stats.errors[:5]]
    result.notes += _server_errors(stats, "cost phase", stack.workdir)
    _check_alive(stack, result, "during the cost phase")
    _say(f"cost done: {result.sync_cost_ms() or 0:.2f} sync ms/change; {st.describe()}")

    # --- lag under the demo load ---------------------------------------------------------------
    ops = int(args.rate * args.load_seconds)
    _say(f"lag: demo load {args.rate:g} ops/s for {args.load_seconds:g} s")
    meter = Meter(stack)
    secs, stats = asyncio.run(
        _drive(urls, watcher, skus, customers, load_seed + 1, args, args.rate, ops, args.stock_rate)
    )
    watcher.wait_idle(40)
    result.others["lag"] = meter.stop()[2]
    result.bench_cores = meter.self_cores
    probes = watcher.take()
    _write_probes(probes, result)
    result.lag = report.lag_rows(probes)
    result.lag_desc = (
        f"{ops} operations at {args.rate:g}/s in {secs:.1f} s, {args.cancel_share:.0%} cancels, "
        f"stock probes {args.stock_rate:g}/s; {len(probes)} changes watched"
    )
    result.lag_requests = f"{stats.summary()}\n  latency ms: {stats.latency_summary()}"
    result.notes += [f"lag phase: {e}" for e in stats.errors[:5]]
    result.notes += _server_errors(stats, "lag phase", stack.workdir)
    _check_alive(stack, result, "during the lag phase")

    # --- idle ----------------------------------------------------------------------------------
    drained, st, _ = flow.wait_drained(flow.state(), 120, extra=0.5)
    watcher.stop()
    time.sleep(args.settle)
    _say(f"idle: {args.idle_seconds:g} s without traffic")
    meter = Meter(stack)
    time.sleep(args.idle_seconds)
    result.idle_cpu, result.idle_seconds, result.others["idle"] = meter.stop()
    _check_alive(stack, result, "while idle")
    _say(f"idle: {result.idle_pct() or 0:.2f} % of one core")


async def _drive(
    urls: dict[str, str],
    watcher: Watcher,
    skus: list[str],
    customers: list[int],
    seed: int,
    args: argparse.Namespace,
    rate: float,
    ops: int,
    stock_rate: float,
) -> tuple[float, LoadStats]:
    async with Load(
        urls=urls,
        watcher=watcher,
        skus=skus,
        customers=customers,
        seed=seed,
        cancel_share=args.cancel_share,
    ) as load:
        secs = await load.run(rate=rate, ops=ops, stock_rate=stock_rate, progress=_say)
    return secs, load.stats


def _server_errors(stats: LoadStats, phase: str, workdir: Path) -> list[str]:
    bad = {k: v for k, v in stats.by_status.items() if k.rsplit(" ", 1)[-1].startswith("5")}
    if not bad:
        return []
    listed = ", ".join(f"{k}: {v}" for k, v in sorted(bad.items()))
    return [f"{phase}: server errors ({listed}); the logs are in {workdir}"]


def _wait(stack: Stack, name: str, url: str, timeout: float) -> bool:
    proc = stack.procs[name]
    return asyncio.run(wait_http(url, timeout, proc.alive))


def _catalogue(url: str) -> tuple[list[str], list[int]]:
    engine = data.engine_for(url)
    try:
        with engine.connect() as conn:
            skus = [r[0] for r in conn.execute(sa.text("SELECT sku FROM items ORDER BY sku"))]
            customers = [r[0] for r in conn.execute(sa.text("SELECT id FROM customers"))]
    finally:
        engine.dispose()
    return skus, customers


def _write_probes(probes: list[Probe], result: report.SizeResult) -> None:
    """Every watched change of the lag phase, for a closer look (results/<stamp>-lag-<size>.csv)."""
    if not probes or not result.csv:
        return
    t0 = min(p.t0 for p in probes)
    lines = ["direction,change,key,sent_at_s,lag_ms"]
    for p in sorted(probes, key=lambda p: p.t0):
        key = p.key if isinstance(p.key, int) else f"{p.key[0]}:{p.key[1]}"
        lag = "" if p.lag is None else f"{p.lag * 1000:.1f}"
        lines.append(f"{p.kind[0]},{p.kind[1]},{key},{p.t0 - t0:.3f},{lag}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    Path(result.csv).write_text("\n".join(lines) + "\n")


def _last(out: str) -> str:
    lines = [ln for ln in out.splitlines() if ln.strip()]
    return lines[-1].strip()[:160] if lines else ""
