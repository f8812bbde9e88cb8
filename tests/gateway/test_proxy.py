"""The proxy as a real process in front of real backends (SPEC §4.2, §4.3)."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from tests.gateway.conftest import launch_gateway, routes_for

ROUTES = """
routes:
  - name: to-b
    path: /api/b
    upstream: b
  - name: rewritten
    path: /old/items
    rewrite: /v2/items
    upstream: b
  - name: param
    path: /api/orders/{id}
    methods: [GET]
    upstream: c
  - name: exact-home
    path: /home
    exact: true
    upstream: c
  - name: dead-no-fallback
    path: /dead
    upstream: dead
  - name: dead-with-fallback
    path: /dead-fb
    upstream: dead
    fallback: b
  - name: slow
    path: /slow
    upstream: b
    timeout: 300ms
  - name: slow-retry
    path: /slowretry
    rewrite: /slow
    upstream: b
    timeout: 300ms
    retries: {attempts: 1}
  - name: errors
    path: /status
    upstream: b
  - name: errors-fb
    path: /fb/status
    rewrite: /status
    upstream: b
    fallback: c
"""


@pytest.fixture(scope="module")
def gw(backends, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gw")
    path = tmp / "routes.yaml"
    path.write_text(routes_for(backends, ROUTES))
    gateway = launch_gateway(path, tmp)
    yield gateway
    gateway.proc.stop()


@pytest.fixture(scope="module")
def client(gw):
    with httpx.Client(base_url=gw.url, timeout=10) as c:
        yield c


def test_fall_through_goes_to_default_upstream(client):
    r = client.get("/anything/else?x=1")
    assert r.status_code == 200
    assert r.headers["X-Backend"] == "a"
    assert r.headers["X-Gateway-Route"] == "default"
    assert r.headers["X-Gateway-Upstream"] == "a"
    assert r.json()["path"] == "/anything/else"
    assert r.json()["query"] == "x=1"


def test_prefix_route_on_whole_segments(client):
    assert client.get("/api/b/7").headers["X-Gateway-Route"] == "to-b"
    assert client.get("/api/b").headers["X-Backend"] == "b"
    assert client.get("/api/bx").headers["X-Gateway-Route"] == "default"


def test_param_route_and_methods(client):
    r = client.get("/api/orders/42")
    assert r.headers["X-Gateway-Route"] == "param"
    assert r.headers["X-Backend"] == "c"
    assert client.post("/api/orders/42").headers["X-Gateway-Route"] == "default"


def test_exact_route(client):
    assert client.get("/home").headers["X-Gateway-Route"] == "exact-home"
    assert client.get("/home/x").headers["X-Gateway-Route"] == "default"


def test_rewrite_replaces_matched_prefix_and_keeps_query(client):
    r = client.get("/old/items/9?q=a%20b")
    assert r.json()["path"] == "/v2/items/9"
    assert r.json()["query"] == "q=a%20b"


def test_path_is_normalised_before_matching_and_upstream_sees_it(client):
    r = client.get("/x/../api/b//7/./")
    assert r.headers["X-Gateway-Route"] == "to-b"
    assert r.json()["path"] == "/api/b/7/"


@pytest.mark.parametrize(
    "raw", ["/../etc/passwd", "/a/%2e%2e/%2e%2e/x", "/a%2fb", "/a%00b", "/a%zz"]
)
def test_bad_paths_get_json_400_before_routing(gw, raw):
    # httpx would normalise; send the raw request line ourselves.
    host, port = gw.url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(f"GET {raw} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head
    import json

    err = json.loads(body)
    assert err["error"] == "bad_request"
    assert err["route"] is None
    assert err["request_id"]
    assert err["detail"]


def test_hop_by_hop_and_forwarded_headers(client):
    r = client.get(
        "/headers",
        headers={
            "Connection": "keep-alive, X-Drop-Me",
            "X-Drop-Me": "1",
            "Keep-Alive": "timeout=5",
            "X-Forwarded-For": "6.6.6.6",
            "X-Forwarded-Host": "evil",
            "X-Auth-Subject": "admin",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "X-Request-ID": "req-123",
        },
    )
    sent = {k.lower(): v for k, v in r.json()["headers"]}
    assert "x-drop-me" not in sent
    assert "keep-alive" not in sent
    assert "x-auth-subject" not in sent
    assert sent["x-forwarded-for"] == "127.0.0.1"
    assert sent["x-forwarded-host"].startswith("127.0.0.1")
    assert sent["x-forwarded-proto"] == "http"
    assert sent["traceparent"] == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert sent["x-request-id"] == "req-123"
    assert r.headers["X-Request-ID"] == "req-123"


def test_request_id_generated_when_absent(client):
    r = client.get("/headers")
    rid = r.headers["X-Request-ID"]
    assert len(rid) >= 16
    sent = {k.lower(): v for k, v in r.json()["headers"]}
    assert sent["x-request-id"] == rid


def test_post_body_forwarded(client):
    r = client.post("/upload", content=b"hello" * 1000)
    assert r.json()["length"] == 5000


def test_head_keeps_content_length(client):
    g = client.get("/status/200")
    h = client.head("/status/200")
    assert h.status_code == 200
    assert h.headers["Content-Length"] == g.headers["Content-Length"]
    assert h.content == b""


def test_dead_upstream_502_fast(client):
    t0 = time.monotonic()
    r = client.get("/dead/x")
    assert r.status_code == 502
    assert time.monotonic() - t0 < 3
    body = r.json()
    assert body["error"] == "bad_gateway"
    assert body["route"] == "dead-no-fallback"
    assert set(body) == {"error", "detail", "route", "request_id"}


def test_dead_upstream_with_fallback_served_by_fallback(client):
    r = client.post("/dead-fb/x", content=b"{}")
    assert r.status_code == 200
    assert r.headers["X-Gateway-Upstream"] == "b"
    assert r.headers["X-Gateway-Route"] == "dead-with-fallback"


def test_timeout_504_within_bound(client):
    t0 = time.monotonic()
    r = client.get("/slow?ms=3000")
    took = time.monotonic() - t0
    assert r.status_code == 504
    assert r.json()["error"] == "gateway_timeout"
    assert took < 2.0


def test_retries_idempotent_timeouts(client, backends):
    r = client.get("/slowretry?ms=1000&key=retry-get")
    assert r.status_code == 504
    time.sleep(0.2)
    assert backends["b"].hits("retry-get") == 2
    r = client.post("/slowretry?ms=1000&key=retry-post")
    assert r.status_code == 504
    time.sleep(0.2)
    assert backends["b"].hits("retry-post") == 1


def test_upstream_5xx_passed_through_unchanged(client):
    r = client.get("/status/500")
    assert r.status_code == 500
    assert r.json() == {"backend": "b", "status": 500}
    assert r.headers["X-Gateway-Upstream"] == "b"


def test_upstream_5xx_falls_back_only_for_idempotent(client):
    r = client.get("/fb/status/503")
    assert r.status_code == 503  # fallback c answers the same path: /status/503 too
    assert r.headers["X-Gateway-Upstream"] == "c"
    r = client.post("/fb/status/503")
    assert r.headers["X-Gateway-Upstream"] == "b"


def test_streamed_chunked_response(client):
    r = client.get("/big?size=300000")
    assert r.status_code == 200
    assert len(r.content) == 300000


def test_keep_alive_many_requests(client):
    for i in range(50):
        assert client.get(f"/api/b/{i}").status_code == 200


def _raw(gw, data: bytes) -> bytes:
    host, port = gw.url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except ConnectionResetError:
            pass
    return out


@pytest.mark.parametrize(
    ("request_bytes", "status", "error"),
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n",
            431,
            "headers_too_large",
        ),
        (
            b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
            "bad_request",
        ),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Bad: a\rb\r\n\r\n", 400, "bad_request"),
    ],
    ids=["long-url", "long-header", "smuggling-cl-te", "cr-in-header"],
)
def test_malformed_requests_get_json_4xx(gw, request_bytes, status, error):
    import json

    out = _raw(gw, request_bytes)
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == str(status).encode(), head[:200]
    err = json.loads(body)
    assert err["error"] == error and err["route"] is None and err["request_id"]


def test_non_ascii_header_bytes_reach_the_upstream_unchanged(gw):
    import json

    for raw_value in (b"caf\xc3\xa9", b"caf\xe9"):  # valid UTF-8, and a lone latin-1 byte
        out = _raw(
            gw,
            b"GET /headers HTTP/1.1\r\nHost: x\r\nX-Name: "
            + raw_value
            + b"\r\nConnection: close\r\n\r\n",
        )
        head, _, body = out.partition(b"\r\n\r\n")
        assert b" 200 " in head.split(b"\r\n")[0], head[:100]
        sent = dict((k.lower(), v) for k, v in json.loads(body)["headers"])
        assert sent["x-name"].encode("utf-8", "surrogateescape") == raw_value
