"""Per-route shadow aggregates (pure): counts, per-field diff counts, latency histograms, examples.

The same :class:`RouteStats` shape is the in-memory delta the mirror flushes and what a store
loads back, so merging replicas or deltas is one :meth:`RouteStats.merge`. Latencies go into
fixed log-spaced buckets (:data:`BUCKET_BOUNDS`) so histograms from any replica add up exactly.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "BUCKET_BOUNDS",
    "EXAMPLES_KEPT",
    "OUTCOMES",
    "RouteStats",
    "bucket_of",
    "percentile_ms",
]

OUTCOMES: Final = ("match", "mismatch", "noise", "error", "dropped", "skipped")
EXAMPLES_KEPT: Final = 20

# Upper bounds in seconds: 0.1 ms .. ~100 s, 20 buckets per decade (each ~12 % wide).
_PER_DECADE = 20
BUCKET_BOUNDS: Final[tuple[float, ...]] = tuple(
    1e-4 * 10 ** (i / _PER_DECADE) for i in range(6 * _PER_DECADE + 1)
)


def bucket_of(seconds: float) -> int:
    """The histogram bucket index of a latency (the last bucket takes everything larger)."""
    return min(bisect.bisect_left(BUCKET_BOUNDS, seconds), len(BUCKET_BOUNDS) - 1)


def percentile_ms(hist: Mapping[int, int], q: float) -> float | None:
    """The q-quantile (0..1) in milliseconds, the geometric middle of its bucket; None if empty."""
    total = sum(hist.values())
    if total <= 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for index in sorted(hist):
        seen += hist[index]
        if seen >= rank:
            upper = BUCKET_BOUNDS[index]
            lower = BUCKET_BOUNDS[index - 1] if index > 0 else upper / 10 ** (1 / _PER_DECADE)
            return round(math.sqrt(lower * upper) * 1000, 3)
    return None  # pragma: no cover - rank <= total


@dataclass
class RouteStats:
    """Aggregates of one route; also used as an additive delta."""

    route: str
    counts: dict[str, int] = field(default_factory=dict)
    fields: dict[str, int] = field(default_factory=dict)
    noise_fields: set[str] = field(default_factory=set)
    primary_latency: dict[int, int] = field(default_factory=dict)
    shadow_latency: dict[int, int] = field(default_factory=dict)
    # Newest last; each is the JSON-ready dict of an example (see mirror.example_json).
    examples: list[dict[str, Any]] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return self.counts.get(outcome, 0)

    @property
    def samples(self) -> int:
        """Requests compared or attempted: match + mismatch + noise + error."""
        return sum(self.count(o) for o in ("match", "mismatch", "noise", "error"))

    def add_outcome(self, outcome: str, n: int = 1) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + n

    def add_field(self, path_pattern: str, n: int = 1) -> None:
        self.fields[path_pattern] = self.fields.get(path_pattern, 0) + n

    def add_latency(self, side: str, seconds: float) -> None:
        hist = self.primary_latency if side == "primary" else self.shadow_latency
        b = bucket_of(seconds)
        hist[b] = hist.get(b, 0) + 1

    def add_example(self, example: dict[str, Any], keep: int = EXAMPLES_KEPT) -> None:
        self.examples.append(example)
        if len(self.examples) > keep:
            del self.examples[: len(self.examples) - keep]

    def merge(self, other: RouteStats, keep: int = EXAMPLES_KEPT) -> None:
        """Add `other` into this one (examples: the newest `keep` of both, by ``at``)."""
        for k, v in other.counts.items():
            self.counts[k] = self.counts.get(k, 0) + v
        for k, v in other.fields.items():
            self.fields[k] = self.fields.get(k, 0) + v
        self.noise_fields |= other.noise_fields
        for mine, theirs in (
            (self.primary_latency, other.primary_latency),
            (self.shadow_latency, other.shadow_latency),
        ):
            for b, v in theirs.items():
                mine[b] = mine.get(b, 0) + v
        if other.examples:
            merged = sorted(self.examples + other.examples, key=lambda e: str(e.get("at", "")))
            self.examples = merged[-keep:]

    def is_empty(self) -> bool:
        return not (self.counts or self.fields or self.noise_fields or self.examples)
