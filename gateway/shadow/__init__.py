"""Shadow traffic (SPEC §4.4): mirror a sample of a route's requests, compare, report.

Modules: ``diff`` (pure comparison), ``stats`` (aggregates), ``store`` / ``sql_store`` /
``redis_store`` (persistence), ``mirror`` (queue + workers), ``report`` (verdicts, renderers),
``views`` (admin handlers), ``cli`` (``shadow-report``).

Names are imported lazily: ``gateway.cli`` may import ``gateway.shadow.cli`` without loading
``gateway.metrics`` (which must wait for PROMETHEUS_MULTIPROC_DIR under ``--workers N``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.shadow.cli import shadow_report_main
    from gateway.shadow.diff import Answer, Diff, compare_answers, compare_json
    from gateway.shadow.mirror import ShadowJob, ShadowMirror, open_mirror, should_mirror
    from gateway.shadow.report import build_report, render
    from gateway.shadow.stats import RouteStats
    from gateway.shadow.store import ShadowStore, store_from_url
    from gateway.shadow.views import StoreSource, add_shadow_routes, shadow_json, shadow_ui

_WHERE = {
    "shadow_report_main": "cli",
    "Answer": "diff",
    "Diff": "diff",
    "compare_answers": "diff",
    "compare_json": "diff",
    "ShadowJob": "mirror",
    "ShadowMirror": "mirror",
    "open_mirror": "mirror",
    "should_mirror": "mirror",
    "build_report": "report",
    "render": "report",
    "RouteStats": "stats",
    "ShadowStore": "store",
    "store_from_url": "store",
    "StoreSource": "views",
    "add_shadow_routes": "views",
    "shadow_json": "views",
    "shadow_ui": "views",
}

__all__ = [
    "Answer",
    "Diff",
    "RouteStats",
    "ShadowJob",
    "ShadowMirror",
    "ShadowStore",
    "StoreSource",
    "add_shadow_routes",
    "build_report",
    "compare_answers",
    "compare_json",
    "open_mirror",
    "render",
    "shadow_json",
    "shadow_report_main",
    "shadow_ui",
    "should_mirror",
    "store_from_url",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'gateway.shadow' has no attribute {name!r}")
    return getattr(importlib.import_module(f"gateway.shadow.{module}"), name)
