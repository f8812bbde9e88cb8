"""Every Prometheus metric of the gateway, defined once (SPEC §4.7).

With `--workers N` the server sets PROMETHEUS_MULTIPROC_DIR before this module is imported; values then live in
per-process files and `exposition()` aggregates them with prometheus-client's MultiProcessCollector.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

__all__ = [
    "CONTENT_TYPE_LATEST",
    "REGISTRY",
    "BREAKER_STATE",
    "BREAKER_TRANSITIONS",
    "CONFIG_RELOADS",
    "FALLBACKS",
    "IDEMPOTENCY",
    "INFLIGHT",
    "INFLIGHT_NOW",
    "REQUESTS",
    "REQUEST_DURATION",
    "SHADOW",
    "SHADOW_QUEUE_DEPTH",
    "UPSTREAM_ERRORS",
    "exposition",
]

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

# One registry for the gateway's own metrics (not the global default one, so tests and the process's
# own collectors stay apart). In multiprocess mode values go to files and this registry is unused for output.
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(
    registry=REGISTRY
)  # process_resident_memory_bytes, open fds: the leak/soak signals

REQUESTS = Counter(
    "gateway_requests_total",
    "Requests answered by the gateway, by route, upstream, method and status code.",
    ["route", "upstream", "method", "code"],
    registry=REGISTRY,
)
REQUEST_DURATION = Histogram(
    "gateway_request_duration_seconds",
    "Time from request received to the last response byte sent, by route and upstream.",
    ["route", "upstream"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
UPSTREAM_ERRORS = Counter(
    "gateway_upstream_errors_total",
    "Failed upstream exchanges, by kind: connect, timeout, reset, status (an upstream 5xx).",
    ["route", "upstream", "kind"],
    registry=REGISTRY,
)
BREAKER_STATE = Gauge(
    "gateway_breaker_state",
    "Circuit breaker state per route and upstream: 0 closed, 1 half-open, 2 open.",
    ["route", "upstream"],
    registry=REGISTRY,
    multiprocess_mode="livemax",
)
BREAKER_TRANSITIONS = Counter(
    "gateway_breaker_transitions_total",
    "Circuit breaker state changes, by the state entered.",
    ["route", "upstream", "to"],
    registry=REGISTRY,
)
FALLBACKS = Counter(
    "gateway_fallbacks_total",
    "Requests served by a route's fallback instead of its upstream, by reason.",
    ["route", "from_upstream", "to_upstream", "reason"],
    registry=REGISTRY,
)
SHADOW = Counter(
    "gateway_shadow_total",
    "Shadow (mirrored) requests by outcome: match, mismatch, noise, error, dropped, skipped.",
    ["route", "outcome"],
    registry=REGISTRY,
)
SHADOW_QUEUE_DEPTH = Gauge(
    "gateway_shadow_queue_depth",
    "Mirrored requests waiting in the shadow queue.",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
IDEMPOTENCY = Counter(
    "gateway_idempotency_total",
    "Requests carrying an idempotency key on a route with `idempotency`, by outcome: stored, "
    "replayed, in_progress, reused, not_stored, store_error.",
    ["route", "outcome"],
    registry=REGISTRY,
)
CONFIG_RELOADS = Counter(
    "gateway_config_reloads_total",
    "routes.yaml loads after start-up, by result: success or failure.",
    ["result"],
    registry=REGISTRY,
)
INFLIGHT = Gauge(
    "gateway_inflight_requests",
    "Requests being proxied right now.",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)


class Inflight:
    """The in-flight count as a plain integer the proxy bumps on the loop thread.

    Gauge.inc()/dec() take a lock twice per request; here the gauge reads the integer at scrape time.
    In multiprocess mode values must reach the per-process files, so the proxy also calls inc()/dec()
    (`via_gauge`).
    """

    __slots__ = ("n", "via_gauge")

    def __init__(self) -> None:
        self.n = 0
        self.via_gauge = MULTIPROCESS


INFLIGHT_NOW = Inflight()
if not MULTIPROCESS:
    INFLIGHT.set_function(lambda: INFLIGHT_NOW.n)


def exposition() -> bytes:
    """The text exposition of all gateway metrics (aggregated over workers in multiprocess mode)."""
    if MULTIPROCESS:
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
