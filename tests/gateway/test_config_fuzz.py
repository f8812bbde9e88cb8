"""gateway.config under fuzzing: any text gives a `Config` or a `ConfigError` whose every
issue names a line of the file, never another exception (fixed budget: ~200 examples each)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config import Config, ConfigError, parse_config

BUDGET = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALID = """\
version: 1
upstreams:
  legacy: {url: "http://127.0.0.1:8000"}
  orders: {url: "http://127.0.0.1:8101", connect_timeout: 500ms}
defaults:
  upstream: legacy
  breaker: {failures: 5, reset_after: 30s}
routes:
  - name: orders
    path: /api/orders/{id}
    methods: [GET, POST]
    upstream: orders
    fallback: legacy
    retries: {attempts: 1}
    shadow: {upstream: legacy, sample: 0.5, methods: [GET]}
    idempotency: {methods: [POST]}
  - name: canary
    path: /api/canary
    split: {orders: 10, legacy: 90}
    sticky: X-Customer-Id
"""

# Keys and values the schema knows, so generated documents get past YAML into validation and lint.
KEYS = [
    "version", "upstreams", "defaults", "routes", "shadow_store", "trusted_proxies", "auth",
    "url", "connect_timeout", "max_connections", "upstream", "timeout", "breaker", "failures",
    "reset_after", "name", "path", "methods", "exact", "rewrite", "split", "sticky", "fallback",
    "retries", "attempts", "shadow", "sample", "ignore", "noise", "max_body", "idempotency",
    "header", "ttl", "scopes", "secret_env", "public_key_file", "algorithm", "legacy", "orders",
]  # fmt: skip
SCALARS = st.one_of(
    st.sampled_from(
        [
            1,
            0,
            -1,
            0.5,
            True,
            None,
            "10s",
            "0",
            "1KiB",
            "GET",
            "get",
            "legacy",
            "orders",
            "/api",
            "/api/{id}",
            "/a/../b",
            "{x}",
            "http://127.0.0.1:1",
            "https://x",
            "http://[::1",
            "10.0.0.0/8",
            "auto",
            "off",
            "HS256",
            "required",
            "default",
            "",
            "\x00",
        ]
    ),  # fmt: skip
    st.integers(),
    st.floats(),
    st.text(max_size=12),
)
TREES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), children, max_size=5
        ),
    ),
    max_leaves=30,
)


def check(text: str) -> None:
    """The property: a Config, or a ConfigError with lines inside the file; nothing else."""
    try:
        config = parse_config(text, "routes.yaml", env={})
    except ConfigError as err:
        assert err.errors
        last = len(text.splitlines()) + 1
        for issue, line in zip(err.errors, err.lines(), strict=True):
            assert 1 <= issue.line <= last, line
            assert line.startswith(f"routes.yaml:{issue.line}: ")
            assert issue.message and "\n" not in line
    else:
        assert isinstance(config, Config)


@BUDGET
@given(st.text(max_size=300))
def test_any_text(text: str) -> None:
    check(text)


@BUDGET
@given(TREES)
def test_any_yaml_document(tree: Any) -> None:
    check(yaml.safe_dump(tree, allow_unicode=True))


@BUDGET
@given(st.data())
def test_edits_of_a_valid_file(data: st.DataObject) -> None:
    lines = VALID.splitlines()
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(lines) - 1))
        edit = data.draw(st.sampled_from(["drop", "repeat", "replace", "insert"]))
        if edit == "drop" and len(lines) > 1:
            del lines[i]
        elif edit == "repeat":
            lines.insert(i, lines[i])
        else:
            indent = " " * data.draw(st.sampled_from([0, 2, 4, 6]))
            key = data.draw(st.sampled_from(KEYS))
            value = yaml.safe_dump(data.draw(SCALARS), default_flow_style=True).splitlines()[0]
            new = f"{indent}{key}: {value}"
            lines[i : i + (edit == "replace")] = [new]
    check("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    "text",
    [
        "version: " + "1" * 5000,  # more digits than Python turns into an int
        "a: " + "{a: " * 3000 + "1" + "}" * 3000,  # deeper than Python's recursion limit
        "a: " + "[" * 5000 + "]" * 5000,
        "version: 1\nupstreams: \x07\n",  # a character YAML refuses
    ],
    ids=["huge-int", "deep-mapping", "deep-list", "control-character"],
)
def test_pathological_text(text: str) -> None:
    check(text)
