"""Idempotency at the edge through real gateway processes and real upstreams (SPEC §4.12).

The stub upstreams count requests per `?key=` value, so every test sends its idempotency key as
both the header and the query and then asks each upstream how often the request reached it.
"""

from __future__ import annotations

import concurrent.futures
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.gateway.conftest import Backend, GatewayProc, dead_port, launch_gateway, routes_for

ROUTES = """
routes:
  - name: orders
    path: /api/orders
    upstream: a
    idempotency: {}
  - name: flip
    path: /flip
    upstream: a
    fallback: b
    idempotency: {}
  - name: slow
    path: /slow
    upstream: a
    timeout: 10s
    idempotency: {header: X-Op-Id, methods: [POST, PUT]}
  - name: slow-timeout
    path: /slowfail
    rewrite: /slow
    upstream: a
    timeout: 300ms
    idempotency: {}
  - name: status
    path: /status
    upstream: a
    idempotency: {}
  - name: big
    path: /big
    upstream: a
    idempotency: {}
  - name: short-ttl
    path: /short
    rewrite: /
    upstream: a
    idempotency: {ttl: 1s}
  - name: dead
    path: /dead
    upstream: dead
    breaker: {failures: 100, reset_after: 1s}
    idempotency: {}
  - name: plain
    path: /plain
    upstream: a
"""


@pytest.fixture(scope="module")
def gw(backends, tmp_path_factory) -> Iterator[GatewayProc]:
    tmp = tmp_path_factory.mktemp("idem-gw")
    path = tmp / "routes.yaml"
    path.write_text(routes_for(backends, ROUTES))
    gateway = launch_gateway(path, tmp)
    yield gateway
    gateway.proc.stop()


def new_key() -> str:
    return uuid.uuid4().hex


def post(
    base: str,
    path: str,
    key: str | None,
    body: object = None,
    *,
    header: str = "Idempotency-Key",
    timeout: float = 10.0,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST `body` as JSON to `path?key=<key>`, with the key in `header` too (when given)."""
    sep = "&" if "?" in path else "?"
    sent = {**(headers or {}), **({header: key} if key is not None else {})}
    return httpx.post(
        f"{base}{path}{sep}key={key or 'none'}",
        json={"order": 1} if body is None else body,
        headers=sent,
        timeout=timeout,
    )


def assert_error(r: httpx.Response, status: int, code: str, route: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "detail", "route", "request_id"}
    assert (body["error"], body["route"]) == (code, route)
    assert body["request_id"] == r.headers["X-Request-ID"]
    return body


def test_first_forwarded_repeats_replayed_upstream_hit_once(gw, backends) -> None:
    key = new_key()
    first = post(gw.url, "/api/orders", key, {"customer_id": 1, "items": [{"sku": "A", "qty": 2}]})
    assert first.status_code == 200
    assert "Idempotent-Replayed" not in first.headers
    for _ in range(3):
        again = post(
            gw.url, "/api/orders", key, {"customer_id": 1, "items": [{"sku": "A", "qty": 2}]}
        )
        assert again.status_code == 200
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.content == first.content
        assert again.headers["Content-Type"] == first.headers["Content-Type"]
        assert again.headers["X-Backend"] == "a"  # the upstream's own headers come back too
        assert again.headers["X-Gateway-Route"] == "orders"
        assert again.headers["X-Gateway-Upstream"] == "a"  # the upstream that gave the answer
        assert again.headers["X-Request-ID"] != first.headers["X-Request-ID"]
    # Equal JSON is the same request (key order, spacing, 2 vs 2.0), as the shop's contract says.
    spaced = b'{ "items": [{"qty": 2.0, "sku": "A"}],\n  "customer_id": 1 }'
    r = httpx.post(
        f"{gw.url}/api/orders?key={key}",
        content=spaced,
        headers={"Idempotency-Key": key, "Content-Type": "application/json"},
    )
    assert r.headers["Idempotent-Replayed"] == "true"
    assert backends["a"].hits(key) == 1
    # The client's own X-Request-ID is kept on a replay, like on any answer.
    r = post(gw.url, "/api/orders", key, {"customer_id": 1, "items": [{"sku": "A", "qty": 2}]},
             headers={"X-Request-ID": "mine-1"})  # fmt: skip
    assert r.headers["X-Request-ID"] == "mine-1"


def test_another_body_or_path_under_the_key_is_422(gw, backends) -> None:
    key = new_key()
    assert post(gw.url, "/api/orders", key, {"qty": 1}).status_code == 200
    assert_error(
        post(gw.url, "/api/orders", key, {"qty": 2}), 422, "idempotency_key_reused", "orders"
    )
    assert_error(
        post(gw.url, "/api/orders/7", key, {"qty": 1}), 422, "idempotency_key_reused", "orders"
    )
    assert backends["a"].hits(key) == 1
    # The same key on another route is another key (keys are scoped by route).
    assert post(gw.url, "/status/201", key, {"qty": 1}).status_code == 201
    assert backends["a"].hits(key) == 2


def test_only_keyed_requests_with_listed_methods_on_idempotency_routes_are_guarded(gw, backends):
    key = new_key()
    for _ in range(2):
        assert post(gw.url, "/plain", key).headers.get("Idempotent-Replayed") is None
    assert backends["a"].hits(key) == 2  # no idempotency block: forwarded every time
    for _ in range(2):
        r = httpx.get(f"{gw.url}/api/orders?key={key}", headers={"Idempotency-Key": key})
        assert r.status_code == 200 and "Idempotent-Replayed" not in r.headers
    assert backends["a"].hits(key) == 4  # GET is not in methods: [POST]
    for _ in range(2):
        assert post(gw.url, "/api/orders", None).status_code == 200  # no key, no guard
    empty = post(gw.url, "/api/orders", "")  # an empty key is no key
    assert empty.status_code == 200 and "Idempotent-Replayed" not in empty.headers
    # PUT is listed on the `slow` route, with its own header name.
    put = httpx.put(f"{gw.url}/slow?ms=1&key={key}", headers={"X-Op-Id": key}, content=b"x")
    assert put.status_code == 200
    again = httpx.put(f"{gw.url}/slow?ms=1&key={key}", headers={"X-Op-Id": key}, content=b"x")
    assert again.headers["Idempotent-Replayed"] == "true"
    # Idempotency-Key means nothing on a route configured for X-Op-Id.
    r = post(gw.url, "/slow?ms=1", key)
    assert "Idempotent-Replayed" not in r.headers


def test_duplicate_key_header_is_400(gw, backends) -> None:
    key = new_key()
    r = httpx.post(
        f"{gw.url}/api/orders?key={key}",
        content=b"{}",
        headers=[("Idempotency-Key", key), ("Idempotency-Key", new_key())],
    )
    assert_error(r, 400, "bad_request", "orders")
    assert backends["a"].hits(key) == 0


def test_non_2xx_is_not_stored_and_the_retry_is_forwarded(gw, backends) -> None:
    key = new_key()
    for _ in range(2):
        r = post(gw.url, "/status/409", key)
        assert r.status_code == 409 and r.json()["backend"] == "a"
        assert "Idempotent-Replayed" not in r.headers
    assert backends["a"].hits(key) == 2
    r = post(gw.url, "/status/500", key)
    assert r.status_code == 500
    assert backends["a"].hits(key) == 3
    # Then a success is stored, status included.
    assert post(gw.url, "/status/201", key).status_code == 201
    replay = post(gw.url, "/status/201", key)
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert backends["a"].hits(key) == 4


def test_failures_free_the_key(gw, backends) -> None:
    key = new_key()
    # Connect error (502), twice: the claim was released, so the retry is not 409.
    for _ in range(2):
        assert_error(post(gw.url, "/dead", key), 502, "bad_gateway", "dead")
    # Upstream timeout (504): released too; the retry reaches the upstream again.
    for _ in range(2):
        assert_error(post(gw.url, "/slowfail?ms=1000", key), 504, "gateway_timeout", "slow-timeout")
    assert backends["a"].hits(key) == 2


def test_concurrent_duplicates_reach_the_upstream_once(gw, backends) -> None:
    key = new_key()

    def send(_: int) -> httpx.Response:
        return post(gw.url, "/slow?ms=1500", key, header="X-Op-Id", timeout=20)

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(send, range(20)))
    forwarded = [
        r for r in responses if r.status_code == 200 and "Idempotent-Replayed" not in r.headers
    ]
    replayed = [r for r in responses if r.headers.get("Idempotent-Replayed") == "true"]
    busy = [r for r in responses if r.status_code == 409]
    assert len(forwarded) == 1
    assert len(forwarded) + len(replayed) + len(busy) == 20
    for r in busy:
        assert_error(r, 409, "idempotency_key_in_progress", "slow")
        assert r.headers["Retry-After"] == "1"
    assert backends["a"].hits(key) == 1
    after = post(gw.url, "/slow?ms=1500", key, header="X-Op-Id")
    assert after.headers["Idempotent-Replayed"] == "true"
    assert after.content == forwarded[0].content
    assert backends["a"].hits(key) == 1


def test_replay_wins_over_an_open_breaker_and_the_fallback(gw, backends) -> None:
    key = new_key()
    first = post(gw.url, "/flip", key)
    assert first.headers["X-Gateway-Upstream"] == "a"
    try:
        opened = httpx.post(f"{gw.admin}/-/breakers/flip/open", timeout=5)
        assert opened.status_code == 200
        # The fallback would serve this route now (a fresh key goes to b)...
        fresh = new_key()
        assert post(gw.url, "/flip", fresh).headers["X-Gateway-Upstream"] == "b"
        # ...but the repeat is answered from the store: no second order on either side.
        again = post(gw.url, "/flip", key)
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.headers["X-Gateway-Upstream"] == "a"
        assert again.content == first.content
    finally:
        httpx.post(f"{gw.admin}/-/breakers/flip/reset", timeout=5)
    assert backends["a"].hits(key) + backends["b"].hits(key) == 1
    assert backends["b"].hits(fresh) == 1 and backends["a"].hits(fresh) == 0
    # And back on the primary, the replay still comes from the store.
    assert post(gw.url, "/flip", key).headers["Idempotent-Replayed"] == "true"
    assert backends["a"].hits(key) + backends["b"].hits(key) == 1


def test_stored_answers_expire_after_ttl(gw, backends) -> None:
    key = new_key()
    assert post(gw.url, "/short", key).status_code == 200
    assert post(gw.url, "/short", key).headers["Idempotent-Replayed"] == "true"
    time.sleep(1.2)
    r = post(gw.url, "/short", key)
    assert r.status_code == 200 and "Idempotent-Replayed" not in r.headers
    assert backends["a"].hits(key) == 2


@pytest.mark.parametrize("length", ["1", "0"], ids=["content-length", "chunked"])
def test_answers_over_1mib_pass_through_unstored(gw, backends, length: str) -> None:
    key = new_key()
    size = 1024 * 1024 + 100
    for _ in range(2):
        r = post(gw.url, f"/big?size={size}&length={length}", key, timeout=30)
        assert r.status_code == 200 and len(r.content) == size
        assert set(r.content) == {ord("x")}
        assert "Idempotent-Replayed" not in r.headers
    assert backends["a"].hits(key) == 2


def test_answers_up_to_1mib_are_stored_whole(gw, backends) -> None:
    key = new_key()
    size = 1024 * 1024  # larger than the proxy's 64 KiB buffer, streamed by the upstream
    first = post(gw.url, f"/big?size={size}", key, timeout=30)
    again = post(gw.url, f"/big?size={size}", key, timeout=30)
    assert len(first.content) == size
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert again.headers["Content-Type"] == "application/octet-stream"
    assert backends["a"].hits(key) == 1


def test_keyed_request_bodies_over_1mib_are_413(gw, backends) -> None:
    key = new_key()
    big = b"y" * (1024 * 1024 + 1)
    r = httpx.post(f"{gw.url}/api/orders?key={key}", content=big, headers={"Idempotency-Key": key})
    assert_error(r, 413, "payload_too_large", "orders")

    def chunks() -> Iterator[bytes]:
        for _ in range(17):
            yield b"z" * 65536

    r = httpx.post(
        f"{gw.url}/api/orders?key={key}", content=chunks(), headers={"Idempotency-Key": key}
    )
    assert_error(r, 413, "payload_too_large", "orders")
    assert backends["a"].hits(key) == 0
    # Without a key the same body is streamed to the upstream as usual.
    assert httpx.post(f"{gw.url}/api/orders?key={key}", content=big).status_code == 200
    assert backends["a"].hits(key) == 1


def test_admin_metrics_and_access_log(gw, backends) -> None:
    key = new_key()
    post(gw.url, "/api/orders", key)
    replay = post(gw.url, "/api/orders", key)
    post(gw.url, "/api/orders", key, {"other": True})
    routes = httpx.get(gw.admin + "/-/routes").json()["routes"]
    by_name = {r["name"]: r for r in routes}
    assert by_name["orders"]["idempotency"] == {
        "header": "Idempotency-Key",
        "ttl": 86400.0,
        "methods": ["POST"],
    }
    assert by_name["slow"]["idempotency"]["methods"] == ["POST", "PUT"]
    assert by_name["plain"]["idempotency"] is None
    text = httpx.get(gw.admin + "/metrics").text
    assert "# TYPE gateway_idempotency_total counter" in text
    for outcome in ("stored", "replayed", "reused"):
        line = f'gateway_idempotency_total{{outcome="{outcome}",route="orders"}} '
        assert line in text
        assert float(text.split(line, 1)[1].split("\n", 1)[0]) >= 1
    assert (
        'gateway_requests_total{code="200",method="POST",route="orders",upstream="idempotency-store"}'
        in text
    )
    promtool = shutil.which("promtool")
    if promtool is not None:  # CI installs it (Debian package prometheus)
        check = subprocess.run(
            [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
        )
        assert check.returncode == 0, check.stdout + check.stderr
    rid = replay.headers["X-Request-ID"]
    deadline = time.monotonic() + 5
    line = None
    while line is None and time.monotonic() < deadline:
        line = next(
            (ln for ln in gw.proc.log().splitlines() if rid in ln and '"status"' in ln), None
        )
        time.sleep(0.05)
    assert line is not None
    record = json.loads(line)
    assert record["upstream"] == "idempotency-store"
    assert record["idempotency"] == "replayed"
    assert record["route"] == "orders"


# -- replicas: two gateway processes, one store ----------------------------------------------------------
SHARED = """
routes:
  - name: orders
    path: /api/orders
    upstream: a
    idempotency: {}
  - name: slow
    path: /slow
    upstream: a
    idempotency: {}
"""


def _shared_between(one: GatewayProc, two: GatewayProc, backend: Backend) -> None:
    key = new_key()
    first = post(one.url, "/api/orders", key)
    assert first.status_code == 200 and "Idempotent-Replayed" not in first.headers
    again = post(two.url, "/api/orders", key)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert_error(
        post(two.url, "/api/orders", key, {"other": 1}), 422, "idempotency_key_reused", "orders"
    )
    assert backend.hits(key) == 1
    # Concurrent duplicates spread over both replicas: one order.
    key = new_key()

    def send(i: int) -> httpx.Response:
        gateway = one if i % 2 else two
        return post(gateway.url, "/slow?ms=800", key, timeout=20)

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(send, range(16)))
    assert {r.status_code for r in responses} <= {200, 409}
    assert (
        sum(r.status_code == 200 and "Idempotent-Replayed" not in r.headers for r in responses) == 1
    )
    assert backend.hits(key) == 1


def test_two_gateways_share_a_sqlite_file(backends, start_gateway, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    text = routes_for(backends, SHARED) + f'shadow_store: "sqlite:///{shared}/shadow.db"\n'
    one = start_gateway(text, name="gw1")
    two = start_gateway(text, name="gw2")
    _shared_between(one, two, backends["a"])
    assert (shared / "idempotency.db").exists()


@pytest.fixture
def redis_env(redis_url: str, redis_prefix: str) -> Iterator[dict[str, str]]:
    yield {"REDIS_URL": redis_url, "GATEWAY_REDIS_PREFIX": redis_prefix}
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{redis_prefix}:*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def test_two_gateways_share_redis(
    backends, start_gateway, redis_env, redis_url, redis_prefix
) -> None:
    text = routes_for(backends, SHARED)
    one = start_gateway(text, env=redis_env, name="gw1")
    two = start_gateway(text, env=redis_env, name="gw2")
    _shared_between(one, two, backends["a"])
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        assert list(client.scan_iter(match=f"{redis_prefix}:idempotency:orders:*"))
    finally:
        client.close()


def test_store_down_refuses_keyed_requests_only(backends, start_gateway) -> None:
    env = {"REDIS_URL": f"redis://127.0.0.1:{dead_port()}/0"}
    gw = start_gateway(routes_for(backends, SHARED), env=env)
    key = new_key()
    for _ in range(2):
        r = post(gw.url, "/api/orders", key)
        assert_error(r, 503, "idempotency_store_unavailable", "orders")
        assert r.headers["Retry-After"] == "1"
    assert backends["a"].hits(key) == 0  # never a possibly duplicate order
    assert httpx.post(f"{gw.url}/api/orders?key={key}", json={}).status_code == 200
    assert httpx.get(f"{gw.url}/elsewhere?key={key}").status_code == 200
    assert backends["a"].hits(key) == 2
    text = httpx.get(gw.admin + "/metrics").text
    assert 'gateway_idempotency_total{outcome="store_error",route="orders"} 2.0' in text


def test_bad_idempotency_store_setting_refuses_to_start(backends, tmp_path: Path) -> None:
    from tests.support.procs import run_cli

    path = tmp_path / "routes.yaml"
    path.write_text(routes_for(backends, SHARED))
    result = run_cli(
        ["-m", "gateway", "serve", "--routes", str(path), "--port", "0", "--admin-port", "0"],
        env={"IDEMPOTENCY_STORE": "postgresql://nowhere/x"},
        timeout=30,
    )
    assert result.returncode == 1
    assert "IDEMPOTENCY_STORE: unsupported idempotency store URL" in result.stderr
