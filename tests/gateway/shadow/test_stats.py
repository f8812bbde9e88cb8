"""gateway/shadow/stats.py: additive aggregates and mergeable latency histograms (pure)."""

from __future__ import annotations

from gateway.shadow.stats import BUCKET_BOUNDS, RouteStats, bucket_of, percentile_ms


def test_buckets_are_log_spaced_and_clamped() -> None:
    assert bucket_of(0.0) == 0
    assert bucket_of(1e9) == len(BUCKET_BOUNDS) - 1
    assert BUCKET_BOUNDS[bucket_of(0.0123)] >= 0.0123
    assert BUCKET_BOUNDS[bucket_of(0.0123) - 1] < 0.0123


def test_percentiles_within_bucket_width() -> None:
    hist: dict[int, int] = {}
    for ms in range(1, 101):  # 1..100 ms
        b = bucket_of(ms / 1000)
        hist[b] = hist.get(b, 0) + 1
    p50, p99 = percentile_ms(hist, 0.5), percentile_ms(hist, 0.99)
    assert p50 is not None and 44 <= p50 <= 56
    assert p99 is not None and 88 <= p99 <= 112
    assert percentile_ms({}, 0.5) is None


def test_merge_adds_counts_fields_histograms_and_keeps_newest_examples() -> None:
    a = RouteStats("r")
    b = RouteStats("r")
    a.add_outcome("match", 3)
    b.add_outcome("match")
    b.add_outcome("mismatch")
    a.add_field("x")
    b.add_field("x", 2)
    b.noise_fields.add("now")
    a.add_latency("primary", 0.01)
    b.add_latency("primary", 0.01)
    b.add_latency("shadow", 0.02)
    for i in range(3):
        a.add_example({"at": f"2026-01-01T00:00:0{i}Z", "n": i})
        b.add_example({"at": f"2026-01-01T00:00:0{i + 3}Z", "n": i + 3})
    a.merge(b, keep=4)
    assert a.counts == {"match": 4, "mismatch": 1}
    assert a.samples == 5
    assert a.fields == {"x": 3}
    assert a.noise_fields == {"now"}
    assert sum(a.primary_latency.values()) == 2 and sum(a.shadow_latency.values()) == 1
    assert [e["n"] for e in a.examples] == [2, 3, 4, 5]


def test_examples_are_bounded() -> None:
    s = RouteStats("r")
    for i in range(30):
        s.add_example({"at": str(i)}, keep=20)
    assert len(s.examples) == 20 and s.examples[0]["at"] == "10"
