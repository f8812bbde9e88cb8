"""gateway.idempotency.core (pure) and the routes.yaml `idempotency` block (SPEC §4.12)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import ConfigError, parse_config
from gateway.idempotency.core import (
    CLAIM_SLACK,
    MAX_ANSWER_BODY,
    Answer,
    InFlight,
    Stored,
    Verdict,
    claim_hold,
    decide,
    decode_answer,
    decode_record,
    encode_answer,
    encode_record,
    fingerprint,
    is_storable,
    storable_headers,
    store_key,
)
from gateway.idempotency.store import MemoryStore, open_store, store_url
from gateway.table import RouteTable
from tests.support.procs import run_cli

ANSWER = Answer(201, "Created", (("Content-Type", "application/json"),), b'{"id": 7}', "orders")


# -- the decision: one row per rule ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("existing", "fp", "verdict"),
    [
        (None, "f", Verdict.FORWARD),
        (InFlight("f"), "f", Verdict.IN_PROGRESS),
        (InFlight("f"), "g", Verdict.REUSED),  # another body wins over "in progress"
        (Stored("f", ANSWER), "f", Verdict.REPLAY),
        (Stored("f", ANSWER), "g", Verdict.REUSED),
    ],
)
def test_decide(existing, fp: str, verdict: Verdict) -> None:
    assert decide(existing, fp) is verdict


@pytest.mark.parametrize(
    ("status", "size", "storable"),
    [
        (200, 0, True),
        (201, MAX_ANSWER_BODY, True),
        (204, 0, True),
        (299, 10, True),
        (201, MAX_ANSWER_BODY + 1, False),
        (199, 0, False),
        (300, 0, False),
        (409, 10, False),
        (500, 10, False),
    ],
)
def test_only_2xx_up_to_1mib_is_storable(status: int, size: int, storable: bool) -> None:
    assert is_storable(status, size) is storable


def test_claim_hold_covers_every_attempt_plus_slack() -> None:
    assert claim_hold(3.0, 0, False) == 3.0 + CLAIM_SLACK
    assert claim_hold(3.0, 0, True) == 6.0 + CLAIM_SLACK
    assert claim_hold(2.0, 2, True) == 8.0 + CLAIM_SLACK


# -- fingerprints ------------------------------------------------------------------------------------
def test_fingerprint_covers_method_path_query_and_body() -> None:
    base = fingerprint("POST", "/api/orders", b"x", None)
    assert fingerprint("POST", "/api/orders", b"x", None) == base
    assert len(base) == 64
    assert fingerprint("PUT", "/api/orders", b"x", None) != base
    assert fingerprint("POST", "/api/orders/1", b"x", None) != base
    assert fingerprint("POST", "/api/orders?a=1", b"x", None) != base
    assert fingerprint("POST", "/api/orders", b"y", None) != base
    # No body and an empty body are the same request.
    assert fingerprint("POST", "/p", None, None) == fingerprint("POST", "/p", b"", None)


def test_json_bodies_count_by_value() -> None:
    ct = "application/json"
    a = fingerprint("POST", "/o", b'{"customer_id": 1, "items": [{"sku": "A", "qty": 2}]}', ct)
    spaced = b'{ "items": [ {"qty": 2.0, "sku": "A"} ],\n "customer_id": 1 }'
    assert fingerprint("POST", "/o", spaced, ct) == a
    assert fingerprint("POST", "/o", spaced, None) == a  # no Content-Type: JSON is still JSON
    assert fingerprint("POST", "/o", spaced, "application/problem+json") == a
    # ... but not when the client says it is something else, and true is not 1.
    assert fingerprint("POST", "/o", spaced, "text/plain") != a
    assert fingerprint("POST", "/o", b'{"x": true}', ct) != fingerprint(
        "POST", "/o", b'{"x": 1}', ct
    )
    assert fingerprint("POST", "/o", b"[1, 2]", ct) != fingerprint("POST", "/o", b"[2, 1]", ct)


def test_malformed_json_falls_back_to_bytes() -> None:
    ct = "application/json"
    assert fingerprint("POST", "/o", b"{", ct) == fingerprint("POST", "/o", b"{", "text/plain")
    assert fingerprint("POST", "/o", b"{", ct) != fingerprint("POST", "/o", b"{ ", ct)
    deep = b"[" * 5000 + b"]" * 5000
    assert fingerprint("POST", "/o", deep, ct) == fingerprint("POST", "/o", deep, "x/y")


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(value=_json, data=st.data())
def test_equal_json_has_one_fingerprint_whatever_its_serialisation(value, data) -> None:
    def shuffled(v):
        if isinstance(v, dict):
            items = data.draw(st.permutations(list(v.items())))
            return {k: shuffled(x) for k, x in items}
        if isinstance(v, list):
            return [shuffled(x) for x in v]
        return v

    one = orjson.dumps(value)
    two = orjson.dumps(shuffled(value), option=orjson.OPT_INDENT_2)
    ct = "application/json"
    assert fingerprint("POST", "/o", one, ct) == fingerprint("POST", "/o", two, ct)


def test_store_key_is_scoped_by_route_and_bounded() -> None:
    assert store_key("orders", "k") != store_key("other", "k")
    assert store_key("orders", "k") == store_key("orders", "k")
    assert len(store_key("orders", "k" * 10_000)) == len("orders:") + 64


# -- what is stored ----------------------------------------------------------------------------------
def test_storable_headers_drop_hop_by_hop_framing_cookies_and_gateway_headers() -> None:
    headers = [
        ("Content-Type", "application/json"),
        ("Location", "/api/orders/7"),
        ("Set-Cookie", "session=secret"),
        ("Connection", "keep-alive, X-Private"),
        ("X-Private", "hop"),
        ("Transfer-Encoding", "chunked"),
        ("Content-Length", "9"),
        ("Date", "Mon, 01 Jan 2024 00:00:00 GMT"),
        ("X-Request-ID", "abc"),
        ("Link", "<a>"),
        ("Link", "<b>"),
    ]
    assert storable_headers(headers) == (
        ("Content-Type", "application/json"),
        ("Location", "/api/orders/7"),
        ("Link", "<a>"),
        ("Link", "<b>"),
    )


def test_records_round_trip() -> None:
    binary = Answer(200, "OK", (("X-A", "ü"),), bytes(range(256)) + b"\n\n", "legacy")
    assert decode_answer(encode_answer(binary)) == binary
    for record in (InFlight("f" * 64), Stored("g" * 64, binary), Stored("h", ANSWER)):
        assert decode_record(encode_record("tok", record)) == ("tok", record)
    with pytest.raises(ValueError):
        decode_record(b"tok\nX\nfp\n")


# -- which store ---------------------------------------------------------------------------------------
def test_store_url_choice(tmp_path: Path) -> None:
    shadow = f"sqlite:///{tmp_path}/var/shadow.db"
    assert store_url(shadow) == f"sqlite:///{tmp_path}/var/idempotency.db"
    assert store_url(shadow, redis_url="redis://r:6379/0") == "redis://r:6379/0"
    assert store_url(shadow, explicit="memory://", redis_url="redis://r") == "memory://"
    assert store_url("redis://r/1?prefix=x") == "redis://r/1?prefix=x"
    assert store_url("sqlite:///:memory:") == "memory://"
    assert (
        store_url("postgresql://db/x", base_dir=tmp_path)
        == f"sqlite:///{tmp_path}/var/idempotency.db"
    )


def test_open_store_by_url(tmp_path: Path) -> None:
    from gateway.idempotency.redis_store import RedisStore
    from gateway.idempotency.sqlite_store import SqliteStore

    assert isinstance(open_store("memory://"), MemoryStore)
    sqlite = open_store(f"sqlite:///{tmp_path}/i.db")
    assert isinstance(sqlite, SqliteStore) and sqlite.path == f"{tmp_path}/i.db"
    redis = open_store("redis://127.0.0.1:6379/0?prefix=abc")
    assert isinstance(redis, RedisStore) and redis.prefix == "abc" and "prefix" not in redis.url
    with pytest.raises(ValueError):
        open_store("postgresql://db/x")


# -- routes.yaml ---------------------------------------------------------------------------------------
BASE = """\
version: 1
upstreams:
  legacy: {url: "http://127.0.0.1:8000"}
  orders: {url: "http://127.0.0.1:8101"}
defaults:
  upstream: legacy
routes:
  - name: orders
    path: /api/orders
    upstream: orders
    fallback: legacy
"""


def test_defaults_and_compiled_route() -> None:
    config = parse_config(BASE + "    idempotency: {}\n")
    idem = config.routes[0].idempotency
    assert idem is not None
    assert (idem.header, idem.ttl, idem.methods) == ("Idempotency-Key", 86400.0, ["POST"])
    table = RouteTable.compile(config)
    assert table.by_name["orders"].idempotency == idem
    assert table.default.idempotency is None
    full = parse_config(
        BASE + "    idempotency: {header: X-Op-Id, ttl: 90m, methods: [post, put]}\n"
    ).routes[0]
    assert full.idempotency is not None
    assert full.idempotency.model_dump() == {
        "header": "X-Op-Id",
        "ttl": 5400.0,
        "methods": ["POST", "PUT"],
    }
    assert parse_config(BASE).routes[0].idempotency is None


@pytest.mark.parametrize(
    ("block", "line", "key", "message"),
    [
        ("    idempotency: {ttl: soon}\n", 12, "routes[0].idempotency.ttl", "bad duration 'soon'"),
        ("    idempotency: {ttl: 0}\n", 12, "routes[0].idempotency.ttl", "greater than zero"),
        (
            "    idempotency:\n      header: Idempotency-Key\n      ttl_seconds: 60\n",
            14,
            "routes[0].idempotency.ttl_seconds",
            "unknown key",
        ),
        ("    idempotency: {methods: POST}\n", 12, "routes[0].idempotency.methods", "valid list"),
        ("    idempotency: {methods: []}\n", 12, "routes[0].idempotency.methods", "guards no"),
        ("    idempotency: {methods: [CONNECT]}\n", 12, "routes[0].idempotency.methods", "tunnel"),
        (
            "    idempotency: {methods: [POST, post]}\n",
            12,
            "routes[0].idempotency.methods",
            "twice",
        ),
        (
            "    idempotency: {header: 'Idem Key'}\n",
            12,
            "routes[0].idempotency.header",
            "header name",
        ),
        ("    idempotency: true\n", 12, "routes[0].idempotency", "valid dictionary"),
        (
            "    methods: [GET, POST]\n    idempotency: {methods: [POST, PUT]}\n",
            13,
            "routes[0].idempotency.methods",
            "does not serve PUT",
        ),
    ],
)
def test_config_errors_name_line_and_key(block: str, line: int, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + block, "routes.yaml")
    (issue,) = info.value.errors
    assert (issue.line, issue.key) == (line, key), str(info.value)
    assert message in issue.message


def test_check_cli_reports_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(BASE + "    idempotency: {ttl: 24 hours, methods: POST, replay: true}\n")
    result = run_cli(["-m", "gateway", "check", str(path)])
    assert result.returncode == 1
    err = result.stderr
    assert f"{path}:12: routes[0].idempotency.ttl: bad duration '24 hours'" in err
    assert f"{path}:12: routes[0].idempotency.methods: Input should be a valid list" in err
    assert f"{path}:12: routes[0].idempotency.replay: unknown key" in err
    path.write_text(BASE + "    idempotency: {ttl: 1h}\n")
    ok = run_cli(["-m", "gateway", "check", str(path)])
    assert ok.returncode == 0, ok.stderr
    assert "idempotency Idempotency-Key POST ttl 3600s" in ok.stdout
