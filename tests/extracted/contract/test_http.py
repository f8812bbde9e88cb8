"""The shared aiohttp edge: every error leaves as the contract's JSON body."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from extracted.contract import errors
from extracted.contract.errors import ContractError
from extracted.contract.http import error_middleware, health_response


class Outage(Exception):
    pass


def _translate(exc: Exception) -> ContractError | None:
    return errors.dependency_unavailable("database") if isinstance(exc, Outage) else None


async def _refused(request: web.Request) -> web.Response:
    raise errors.unknown_sku("ZZ")


async def _outage(request: web.Request) -> web.Response:
    raise Outage("down")


async def _bug(request: web.Request) -> web.Response:
    raise RuntimeError("bug")


async def _read(request: web.Request) -> web.Response:
    await request.read()
    return health_response(True)


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application(
        middlewares=[error_middleware(logging.getLogger("test"), _translate)], client_max_size=10
    )
    app.router.add_get("/refused", _refused)
    app.router.add_get("/outage", _outage)
    app.router.add_get("/bug", _bug)
    app.router.add_post("/read", _read)
    async with TestClient(TestServer(app)) as c:
        yield c


@pytest.mark.parametrize(
    "method,path,status,body",
    [
        ("GET", "/refused", 422, errors.unknown_sku("ZZ").body()),
        ("GET", "/outage", 503, errors.dependency_unavailable("database").body()),
        ("GET", "/bug", 500, errors.internal_error().body()),
        ("GET", "/nope", 404, errors.path_not_found().body()),
        ("DELETE", "/refused", 405, errors.method_not_allowed("DELETE").body()),
    ],
)
async def test_errors_are_contract_bodies(
    client: TestClient[web.Request, web.Application],
    method: str,
    path: str,
    status: int,
    body: dict[str, str],
) -> None:
    resp = await client.request(method, path)
    assert resp.status == status
    assert resp.content_type == "application/json"
    assert await resp.json() == body
    if status == 405:
        assert resp.headers["Allow"] == "GET, HEAD"


async def test_too_large_body(client: TestClient[web.Request, web.Application]) -> None:
    resp = await client.post("/read", data=b"x" * 100)
    assert resp.status == 413
    assert await resp.json() == errors.body_too_large().body()


def test_health_bodies() -> None:
    assert health_response(True).body == b'{"status":"ok"}'
    down = health_response(False)
    assert down.status == 503
    assert down.body == b'{"status":"unavailable","detail":"database unavailable"}'
