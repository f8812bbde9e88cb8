"""gateway/shadow/report.py: verdicts, the SPEC §4.4 JSON shape, and the four renderers (pure)."""

from __future__ import annotations

from html.parser import HTMLParser

import orjson
import pytest

from gateway.shadow.report import build_report, render, route_report
from gateway.shadow.stats import RouteStats


def stats(route: str = "inventory-reads", **counts: int) -> RouteStats:
    s = RouteStats(route)
    for outcome, n in counts.items():
        s.add_outcome(outcome, n)
    for _ in range(counts.get("match", 0) + counts.get("mismatch", 0)):
        s.add_latency("primary", 0.004)
        s.add_latency("shadow", 0.006)
    return s


def with_example(s: RouteStats) -> RouteStats:
    s.add_field("items[*].price_cents", 7)
    s.add_field("generated_at", 40)
    s.noise_fields.add("generated_at")
    s.add_example(
        {
            "method": "GET",
            "path": "/api/inventory",
            "status": {"primary": 200, "shadow": 200},
            "diffs": [{"path": "items[3].price_cents", "primary": 100, "shadow": 101}],
            "at": "2026-11-25T12:00:00.000Z",
        }
    )
    return s


def test_json_shape_matches_spec() -> None:
    report = build_report([with_example(stats(match=990, noise=5, mismatch=5))])
    assert set(report) >= {"generated_at", "routes"}
    assert report["generated_at"].endswith("Z")
    (r,) = report["routes"]
    assert set(r) >= {
        "route", "verdict", "reason", "samples", "matches", "mismatches", "noise",
        "errors", "dropped", "match_rate", "fields", "latency_ms", "examples",
    }  # fmt: skip
    assert r["fields"][0] == {"path": "generated_at", "count": 40, "noise": True}
    assert r["fields"][1] == {"path": "items[*].price_cents", "count": 7, "noise": False}
    assert set(r["latency_ms"]) == {"primary", "shadow"}
    assert set(r["latency_ms"]["primary"]) == {"p50", "p95", "p99"}
    assert 3.5 < r["latency_ms"]["primary"]["p50"] < 4.5
    (ex,) = r["examples"]
    assert set(ex) >= {"method", "path", "status", "diffs", "at"}
    assert set(ex["status"]) == {"primary", "shadow"}
    assert set(ex["diffs"][0]) >= {"path", "primary", "shadow"}
    orjson.dumps(report)  # JSON-serialisable as is


def test_match_rate_counts_noise_as_match_and_errors_against() -> None:
    r = route_report(stats(match=90, noise=5, mismatch=3, error=2), min_samples=10)
    assert r["samples"] == 100
    assert r["match_rate"] == pytest.approx(0.95)


def test_insufficient_data_says_how_many_more() -> None:
    r = route_report(stats(match=40), min_samples=100)
    assert r["verdict"] == "insufficient-data"
    assert "60 more" in r["reason"]


def test_not_ready_names_rate_and_top_fields() -> None:
    r = route_report(with_example(stats(match=95, mismatch=5)), min_samples=100)
    assert r["verdict"] == "not-ready"
    assert "95.00%" in r["reason"] and "items[*].price_cents" in r["reason"]
    assert "generated_at" not in r["reason"]  # noise is not a reason


def test_not_ready_when_errors_are_high() -> None:
    r = route_report(stats(match=995, error=5), min_samples=100, min_match=0.99)
    assert r["verdict"] == "ready"
    r = route_report(stats(match=980, error=20), min_samples=100, min_match=0.99)
    assert r["verdict"] == "not-ready" and "error" in r["reason"]


def test_ready() -> None:
    r = route_report(stats(match=996, mismatch=4), min_samples=100, min_match=0.995)
    assert r["verdict"] == "ready"
    assert r["match_rate"] == pytest.approx(0.996)


def test_dropped_and_skipped_are_not_samples() -> None:
    r = route_report(stats(match=100, dropped=50, skipped=3))
    assert r["samples"] == 100 and r["dropped"] == 50 and r["skipped"] == 3


def test_route_filter_reports_unknown_route_as_insufficient() -> None:
    report = build_report([stats("a", match=500)], route="b")
    assert [r["route"] for r in report["routes"]] == ["b"]
    assert report["routes"][0]["verdict"] == "insufficient-data"
    assert report["routes"][0]["match_rate"] is None
    assert report["routes"][0]["latency_ms"]["shadow"]["p99"] is None


def test_routes_sorted_and_examples_newest_first() -> None:
    s = stats("b", match=1)
    s.add_example({"at": "1", "n": 1})
    s.add_example({"at": "2", "n": 2})
    report = build_report([s, stats("a", match=1)])
    assert [r["route"] for r in report["routes"]] == ["a", "b"]
    assert [e["n"] for e in report["routes"][1]["examples"]] == [2, 1]


@pytest.fixture
def report() -> dict:
    return build_report(
        [with_example(stats(match=95, mismatch=5)), stats("orders", match=300), stats("x")]
    )


def test_render_text_table(report: dict) -> None:
    out = render(report, "text")
    lines = out.splitlines()
    assert any(line.startswith("route") and "verdict" in line for line in lines)
    assert any("inventory-reads" in line and "not-ready" in line for line in lines)
    assert any("orders" in line and "ready" in line and "100.00%" in line for line in lines)
    assert "items[3].price_cents: primary=100 shadow=101" in out


def test_render_json_round_trips(report: dict) -> None:
    assert orjson.loads(render(report, "json")) == report


def test_render_markdown_table(report: dict) -> None:
    out = render(report, "markdown")
    assert "| route | verdict |" in out
    assert "|---|" in out
    assert "| inventory-reads | not-ready |" in out
    assert "### `orders`: ready" in out


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        d = dict(attrs)
        if tag == "tr" and d.get("class") == "route":
            self.rows.append(d["data-route"] or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_render_html_escapes_and_lists_routes(report: dict) -> None:
    report["routes"][0]["examples"][0]["diffs"][0]["shadow"] = "<script>alert(1)</script>"
    out = render(report, "html")
    assert "<script>alert" not in out
    parser = _Collector()
    parser.feed(out)
    assert parser.rows == ["inventory-reads", "orders", "x"]
    assert "not-ready" in "".join(parser.text)


@pytest.mark.parametrize("fmt", ["text", "json", "markdown", "html"])
def test_empty_report_renders(fmt: str) -> None:
    out = render(build_report([]), fmt)
    assert out.strip()


def test_unknown_format() -> None:
    with pytest.raises(ValueError):
        render({"routes": []}, "xml")
