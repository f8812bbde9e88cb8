"""Shadow comparison reports (SPEC §4.4): verdicts from aggregates, rendered four ways.

:func:`build_report` is pure and returns exactly the JSON of ``/-/shadow`` and
``shadow-report --format json``; :func:`render` turns it into text, JSON, Markdown or HTML.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final

import jinja2
import orjson

from gateway.shadow.diff import covered_by
from gateway.shadow.stats import RouteStats, percentile_ms

__all__ = [
    "FORMATS",
    "VERDICTS",
    "build_report",
    "render",
    "render_html",
    "render_json",
    "render_markdown",
    "render_text",
    "route_report",
]

VERDICTS: Final = ("ready", "not-ready", "insufficient-data")
FORMATS: Final = ("text", "json", "markdown", "html")
DEFAULT_MIN_SAMPLES: Final = 100
DEFAULT_MIN_MATCH: Final = 0.995
_TOP_FIELDS_IN_REASON = 3


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _pct(rate: float) -> str:
    return f"{rate * 100:.2f}%"


def route_report(
    stats: RouteStats,
    *,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    min_match: float = DEFAULT_MIN_MATCH,
) -> dict[str, Any]:
    """One route's entry of the report, verdict and reason included."""
    matches, mismatches = stats.count("match"), stats.count("mismatch")
    noise, errors = stats.count("noise"), stats.count("error")
    samples = matches + mismatches + noise + errors
    match_rate = (matches + noise) / samples if samples else None
    error_rate = errors / samples if samples else 0.0
    fields = [
        {"path": path, "count": count, "noise": covered_by(path, stats.noise_fields)}
        for path, count in sorted(stats.fields.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    real = [f for f in fields if not f["noise"]]
    if samples < min_samples:
        verdict = "insufficient-data"
        more = min_samples - samples
        reason = f"{samples} of {min_samples} samples: {more} more needed"
    elif match_rate is not None and match_rate < min_match:
        verdict = "not-ready"
        parts = [f"match rate {_pct(match_rate)} < {_pct(min_match)}"]
        if real:
            top = ", ".join(f"{f['path']} ({f['count']})" for f in real[:_TOP_FIELDS_IN_REASON])
            parts.append(f"top differing fields: {top}")
        if errors:
            parts.append(f"shadow errors: {errors} ({_pct(error_rate)})")
        reason = "; ".join(parts)
    elif error_rate > 1.0 - min_match:
        verdict = "not-ready"
        reason = f"shadow error rate {_pct(error_rate)} > {_pct(1.0 - min_match)}"
    else:
        verdict = "ready"
        assert match_rate is not None
        reason = f"match rate {_pct(match_rate)} >= {_pct(min_match)} over {samples} samples"
    return {
        "route": stats.route,
        "verdict": verdict,
        "reason": reason,
        "samples": samples,
        "matches": matches,
        "mismatches": mismatches,
        "noise": noise,
        "errors": errors,
        "dropped": stats.count("dropped"),
        "skipped": stats.count("skipped"),
        "match_rate": round(match_rate, 6) if match_rate is not None else None,
        "fields": fields,
        "noise_fields": sorted(stats.noise_fields),
        "latency_ms": {
            side: {f"p{q}": percentile_ms(hist, q / 100) for q in (50, 95, 99)}
            for side, hist in (("primary", stats.primary_latency), ("shadow", stats.shadow_latency))
        },
        "examples": list(reversed(stats.examples)),  # newest first
    }


def build_report(
    stats: Iterable[RouteStats],
    *,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    min_match: float = DEFAULT_MIN_MATCH,
    route: str | None = None,
) -> dict[str, Any]:
    """``{"generated_at", "routes": [...]}``; with `route`, only that route (even with no data)."""
    by_route = {s.route: s for s in stats}
    if route is not None:
        by_route = {route: by_route.get(route) or RouteStats(route)}
    return {
        "generated_at": _now(),
        "min_samples": min_samples,
        "min_match": min_match,
        "routes": [
            route_report(by_route[name], min_samples=min_samples, min_match=min_match)
            for name in sorted(by_route)
        ],
    }


# -- renderers ---------------------------------------------------------------------------------------
def render_json(report: dict[str, Any]) -> str:
    return orjson.dumps(report, option=orjson.OPT_INDENT_2).decode()


def _fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _fmt_rate(value: float | None) -> str:
    return "-" if value is None else _pct(value)


def _top_fields(route: dict[str, Any], n: int = 3) -> str:
    return ", ".join(
        f"{f['path']}{' (noise)' if f['noise'] else ''} x{f['count']}" for f in route["fields"][:n]
    )


_COLUMNS = (
    "route",
    "verdict",
    "samples",
    "match rate",
    "mism.",
    "noise",
    "errors",
    "dropped",
    "p99 ms (prim/shadow)",
)


def _rows(report: dict[str, Any]) -> list[list[str]]:
    rows = []
    for r in report["routes"]:
        lat = r["latency_ms"]
        rows.append(
            [
                r["route"],
                r["verdict"],
                str(r["samples"]),
                _fmt_rate(r["match_rate"]),
                str(r["mismatches"]),
                str(r["noise"]),
                str(r["errors"]),
                str(r["dropped"]),
                f"{_fmt_ms(lat['primary']['p99'])}/{_fmt_ms(lat['shadow']['p99'])}",
            ]
        )
    return rows


def render_text(report: dict[str, Any]) -> str:
    """A terminal table, then per route the reason, top fields and the newest example."""
    rows = _rows(report)
    widths = [max([len(c), *(len(row[i]) for row in rows)]) for i, c in enumerate(_COLUMNS)]
    line = "  ".join(c.ljust(w) for c, w in zip(_COLUMNS, widths, strict=True))
    out = [f"shadow report, generated {report['generated_at']}", "", line, "-" * len(line)]
    out += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    if not rows:
        out.append("(no shadowed routes with data)")
    for r in report["routes"]:
        out += ["", f"{r['route']}: {r['verdict']} - {r['reason']}"]
        if r["fields"]:
            out.append(f"  fields: {_top_fields(r, 5)}")
        if r["examples"]:
            ex = r["examples"][0]
            out.append(
                f"  latest mismatch: {ex['method']} {ex['path']} at {ex['at']}"
                f" status {ex['status']['primary']}/{ex['status']['shadow']}"
            )
            for d in ex["diffs"][:5]:
                p, s = orjson.dumps(d["primary"]).decode(), orjson.dumps(d["shadow"]).decode()
                out.append(f"    {d['path']}: primary={p} shadow={s}")
    return "\n".join(out) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: dict[str, Any]) -> str:
    """A GitHub-flavoured Markdown table plus per-route details (for PR comments)."""
    out = [f"## Shadow report ({report['generated_at']})", ""]
    out.append("| " + " | ".join(_COLUMNS) + " |")
    out.append("|" + "|".join("---" for _ in _COLUMNS) + "|")
    for row in _rows(report):
        out.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
    for r in report["routes"]:
        out += ["", f"### `{r['route']}`: {r['verdict']}", "", _md_cell(r["reason"])]
        if r["fields"]:
            out += ["", "| field | count | noise |", "|---|---|---|"]
            out += [
                f"| `{_md_cell(f['path'])}` | {f['count']} | {'yes' if f['noise'] else ''} |"
                for f in r["fields"][:10]
            ]
        if r["examples"]:
            ex = r["examples"][0]
            out += [
                "",
                f"Latest mismatch: `{ex['method']} {_md_cell(ex['path'])}` at {ex['at']},"
                f" status {ex['status']['primary']} / {ex['status']['shadow']}",
            ]
            for d in ex["diffs"][:5]:
                p, s = orjson.dumps(d["primary"]).decode(), orjson.dumps(d["shadow"]).decode()
                out.append(
                    f"- `{_md_cell(d['path'])}`: primary `{_md_cell(p)}`, shadow `{_md_cell(s)}`"
                )
    return "\n".join(out) + "\n"


@lru_cache(maxsize=1)
def templates() -> jinja2.Environment:
    """The package's Jinja2 templates (HTML autoescaped)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("gateway.shadow", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["rate"] = _fmt_rate
    env.filters["ms"] = _fmt_ms
    env.filters["tojson_compact"] = lambda v: orjson.dumps(v).decode()
    return env


def render_html(report: dict[str, Any]) -> str:
    """A standalone HTML page (no scripts) of the report."""
    return templates().get_template("report.html").render(report=report)


def render(report: dict[str, Any], fmt: str) -> str:
    """The report in one of :data:`FORMATS`."""
    if fmt == "json":
        return render_json(report) + "\n"
    if fmt == "markdown":
        return render_markdown(report)
    if fmt == "html":
        return render_html(report)
    if fmt == "text":
        return render_text(report)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
