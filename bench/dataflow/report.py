"""The figures of one run and their rendering: text tables and markdown rows."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bench.dataflow.load import KINDS, Probe
from bench.dataflow.stack import SYNC_PROCESSES

LAG_TARGET_S = 1.0
IDLE_TARGET_PCT = 2.0
# "the same within noise": the larger size may cost at most this factor of the smaller one
COST_RATIO_MAX = 1.25
# above this many cores used by other processes during a phase, the run is flagged as noisy
NOISY_CORES = 0.3


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of `values` (q in 0..100); NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class LagRow:
    direction: str
    change: str
    lags: list[float]
    missed: int

    def p(self, q: float) -> float:
        return percentile(self.lags, q)


def lag_rows(probes: list[Probe]) -> list[LagRow]:
    """One row per kind, then one per direction (all its kinds together)."""
    rows: list[LagRow] = []
    for kind in KINDS:
        mine = [p for p in probes if p.kind == kind]
        rows.append(
            LagRow(
                kind[0],
                kind[1],
                [p.lag for p in mine if p.lag is not None],
                sum(1 for p in mine if p.lag is None),
            )
        )
    for direction in dict.fromkeys(k[0] for k in KINDS):
        mine_rows = [r for r in rows if r.direction == direction and r.change != "all"]
        rows.append(
            LagRow(
                direction,
                "all",
                [v for r in mine_rows for v in r.lags],
                sum(r.missed for r in mine_rows),
            )
        )
    return rows


@dataclass
class SizeResult:
    """Everything measured on one stack (one legacy size)."""

    size: int
    backend: str
    setup: list[str] = field(default_factory=list)
    backfill_orders_s: float | None = None
    backfill_inventory_s: float | None = None
    groups: list[str] = field(default_factory=list)
    # cost
    cost_changes: int = 0
    cost_requests: str = ""
    cost_seconds: float = 0.0
    cost_drain_s: float = 0.0
    cost_drained: bool = False
    cost_cpu: dict[str, float] = field(default_factory=dict)
    # lag
    lag_desc: str = ""
    lag_requests: str = ""
    lag: list[LagRow] = field(default_factory=list)
    # idle
    idle_seconds: float = 0.0
    idle_cpu: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # cores the machine's other processes kept busy during each phase (noise indicator)
    others: dict[str, float] = field(default_factory=dict)
    csv: str = ""
    bench_cores: float = 0.0  # this benchmark's own CPU (load + watcher) during the lag phase

    def sync_cost_ms(self) -> float | None:
        if not self.cost_changes or not self.cost_cpu:
            return None
        return 1000 * sum(self.cost_cpu.get(n, 0.0) for n in SYNC_PROCESSES) / self.cost_changes

    def idle_pct(self) -> float | None:
        if not self.idle_seconds or not self.idle_cpu:
            return None
        return 100 * sum(self.idle_cpu.values()) / self.idle_seconds

    def idle_sync_ms(self, seconds: float) -> float:
        """CPU (ms) the sync processes use idle in `seconds` (for the net cost)."""
        if not self.idle_seconds:
            return 0.0
        idle = sum(self.idle_cpu.get(n, 0.0) for n in SYNC_PROCESSES)
        return 1000 * idle / self.idle_seconds * seconds

    def lag_p99(self, direction: str) -> float | None:
        for row in self.lag:
            if row.direction == direction and row.change == "all" and row.lags:
                return row.p(99)
        return None


def _ms(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "-"
    return f"{seconds * 1000:.0f}"


def render_size(r: SizeResult) -> str:
    out: list[str] = [f"== legacy with {r.size:,} orders ({r.backend}) =="]
    out += [f"  {line}" for line in r.setup]
    if r.groups:
        out.append(f"  consumer groups on the bus: {', '.join(r.groups)}")
    if r.lag:
        out.append(f"change lag under the demo load: {r.lag_desc}")
        out.append(f"  requests: {r.lag_requests}")
        out.append(f"  the benchmark itself (load + watcher) used {r.bench_cores:.2f} cores")
        head = (
            f"  {'direction':<20} {'change':<22} {'count':>6} {'p50 ms':>7} {'p95 ms':>7} "
            f"{'p99 ms':>7} {'max ms':>7} {'missed':>6}"
        )
        out += [head, "  " + "-" * (len(head) - 2)]
        for row in r.lag:
            out.append(
                f"  {row.direction:<20} {row.change:<22} {len(row.lags):>6} {_ms(row.p(50)):>7} "
                f"{_ms(row.p(95)):>7} {_ms(row.p(99)):>7} {_ms(max(row.lags, default=None)):>7} "
                f"{row.missed:>6}"
            )
    if r.cost_cpu:
        drained = "drained" if r.cost_drained else "NOT drained (timed out)"
        out.append(
            f"cost: {r.cost_changes} changes in {r.cost_seconds:.1f} s + {r.cost_drain_s:.1f} s "
            f"until {drained}"
        )
        out.append(f"  requests: {r.cost_requests}")
        window = r.cost_seconds + r.cost_drain_s
        out.append(f"  {'process':<18} {'cpu s':>7} {'ms/change':>10}")
        for name, cpu in r.cost_cpu.items():
            mark = " *" if name in SYNC_PROCESSES else ""
            out.append(f"  {name:<18} {cpu:>7.2f} {1000 * cpu / r.cost_changes:>10.2f}{mark}")
        sync_ms = r.sync_cost_ms()
        if sync_ms is not None:
            net = sync_ms - r.idle_sync_ms(window) / r.cost_changes
            out.append(
                f"  sync processes (*): {sync_ms:.2f} ms/change "
                f"({net:.2f} net of their idle CPU over the {window:.1f} s)"
            )
    if r.idle_cpu:
        out.append(f"idle: {r.idle_seconds:.0f} s, no traffic")
        out.append(f"  {'process':<18} {'cpu s':>7} {'% core':>7}")
        for name, cpu in r.idle_cpu.items():
            out.append(f"  {name:<18} {cpu:>7.3f} {100 * cpu / r.idle_seconds:>7.2f}")
        out.append(f"  whole stack: {r.idle_pct():.2f} % of one core")
    if r.others:
        out.append(
            "other processes on the machine (not this stack, not the benchmark"
            + ("; the PostgreSQL and Redis servers included" if "redis" in r.backend else "")
            + ") kept busy: "
            + ", ".join(f"{phase} {cores:.2f} cores" for phase, cores in r.others.items())
        )
    out += [f"NOTE: {n}" for n in r.notes]
    return "\n".join(out)


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "MISSED")


def summary_rows(results: list[SizeResult]) -> list[list[str]]:
    """[metric, target, one column per size..., verdict]."""
    rows: list[list[str]] = []
    for direction, label in (
        ("legacy -> new", "change lag p99, legacy -> new services"),
        ("new -> legacy", "change lag p99, new services -> legacy"),
        ("inventory -> legacy", "stock lag p99, inventory (authority) -> legacy"),
    ):
        values = [r.lag_p99(direction) for r in results]
        known = [v for v in values if v is not None]
        ok = all(v < LAG_TARGET_S for v in known) if known else None
        rows.append(
            [
                label,
                "< 1 s",
                *[f"{_ms(v)} ms" if v is not None else "-" for v in values],
                _verdict(ok),
            ]
        )
    costs = [r.sync_cost_ms() for r in results]
    cells = []
    for i, c in enumerate(costs):
        if c is None:
            cells.append("-")
        elif i and costs[0]:
            cells.append(f"{c:.2f} ms (x{c / costs[0]:.2f})")
        else:
            cells.append(f"{c:.2f} ms")
    ok_cost = None
    if len(costs) > 1 and all(c is not None for c in costs) and costs[0]:
        ok_cost = max(c for c in costs if c is not None) / costs[0] <= COST_RATIO_MAX
    rows.append(
        [
            "sync CPU per change (orders-sync + inventory-sync + legacy-consumer)",
            f"same at every size (<= x{COST_RATIO_MAX})",
            *cells,
            _verdict(ok_cost),
        ]
    )
    rows.append(
        [
            "backfill, `extracted.orders sync` one shot",
            "-",
            *[
                f"{r.backfill_orders_s:.1f} s" if r.backfill_orders_s is not None else "-"
                for r in results
            ],
            "-",
        ]
    )
    idles = [r.idle_pct() for r in results]
    known_idle = [v for v in idles if v is not None]
    rows.append(
        [
            "idle CPU, whole stack (sum over its processes)",
            "< 2 % of a core",
            *[f"{v:.2f} %" if v is not None else "-" for v in idles],
            _verdict(all(v < IDLE_TARGET_PCT for v in known_idle) if known_idle else None),
        ]
    )
    return rows


def render_summary(results: list[SizeResult], backend: str) -> tuple[str, str]:
    """(text table, markdown table) of the headline figures."""
    head = ["metric", "target", *[f"{r.size:,} orders" for r in results], "verdict"]
    rows = summary_rows(results)
    widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(len(head))]
    lines = [f"summary ({backend})"]
    busy = max((c for r in results for c in r.others.values()), default=0.0)
    if busy > NOISY_CORES:
        lines.append(
            f"WARNING: other processes kept up to {busy:.2f} cores of this machine busy during "
            "the run: lag and latency figures are inflated by CPU contention (the CPU per "
            "change and idle CPU figures are per process and hold)"
        )
    lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    md_head = ["backend", *head]
    md = ["| " + " | ".join(md_head) + " |", "|" + "---|" * len(md_head)]
    md += ["| " + " | ".join([backend, *row]) + " |" for row in rows]
    # the lag in detail
    lag_head = ["backend", "orders", "direction", "change", "count", "p50", "p95", "p99", "max"]
    md += ["", "| " + " | ".join(lag_head) + " |", "|" + "---|" * len(lag_head)]
    for r in results:
        for row in r.lag:
            if row.change == "all" or row.lags:
                cells = [backend, f"{r.size:,}", row.direction, row.change, str(len(row.lags))]
                cells += [f"{_ms(row.p(q))} ms" for q in (50, 95, 99)]
                cells.append(f"{_ms(max(row.lags, default=None))} ms")
                md.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines), "\n".join(md)
