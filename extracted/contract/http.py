"""The aiohttp edge of the contract: JSON answers, the error middleware, `/healthz` answers."""

from __future__ import annotations

import logging
from collections.abc import Callable

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from extracted.contract import errors
from extracted.contract.errors import ContractError

# A service's own mapping of failures that are not contract errors (e.g. a database outage).
Translate = Callable[[Exception], ContractError | None]


def json_response(obj: object, status: int = 200) -> web.Response:
    """A contract JSON answer: compact orjson, keys in insertion order."""
    return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json")


def error_response(exc: ContractError) -> web.Response:
    """`{"error": code, "detail": text}` with the error's status."""
    return json_response(exc.body(), exc.status)


def health_response(ok: bool) -> web.Response:
    """200 `{"status":"ok"}`, or 503 with the database-unavailable detail."""
    if not ok:
        return json_response({"status": "unavailable", "detail": errors.DATABASE_UNAVAILABLE}, 503)
    return json_response({"status": "ok"})


def error_middleware(log: logging.Logger, translate: Translate | None = None) -> Middleware:
    """Every error leaves as `{"error","detail"}` JSON: contract errors, router 404/405, 413.

    `translate` maps the service's other failures to a contract error; anything left is a
    logged 500.
    """

    @web.middleware
    async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ContractError as exc:
            return error_response(exc)
        except web.HTTPNotFound:
            return error_response(errors.path_not_found())
        except web.HTTPMethodNotAllowed as exc:
            response = error_response(errors.method_not_allowed(request.method))
            response.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
            return response
        except web.HTTPRequestEntityTooLarge:
            # The legacy refuses bodies over 1 MiB the same way (werkzeug's text).
            return error_response(errors.body_too_large())
        except web.HTTPException:
            raise
        except Exception as exc:
            answer = translate(exc) if translate is not None else None
            if answer is None:
                log.exception("unhandled error on %s %s", request.method, request.path)
                answer = errors.internal_error()
            return error_response(answer)

    return errors_as_json
