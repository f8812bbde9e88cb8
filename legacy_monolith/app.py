"""``create_app``: the one place that wires the legacy monolith (database, blueprints, errors)."""

from __future__ import annotations

import logging

from flask import Flask, Response, render_template, request
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge

from extracted.stock_authority import stock_authority
from legacy_monolith import errors
from legacy_monolith.api import DB_EXTENSION, STOCK_EXTENSION, api, get_db, json_response
from legacy_monolith.db import Database, database_url_from_env
from legacy_monolith.errors import ShopError
from legacy_monolith.pages import money, pages

__all__ = ["create_app"]

log = logging.getLogger("legacy_monolith")

# Request bodies are small JSON documents; anything bigger is refused (413).
MAX_BODY = 1024 * 1024


def _wants_json() -> bool:
    # JSON for the API and the probe; HTML error pages for everything a browser visits.
    return request.path.startswith("/api/") or request.path in ("/api", "/healthz")


def _error_response(error: ShopError) -> Response | tuple[str, int]:
    if not _wants_json() and error.status == 404:
        return render_template("not_found.html", detail=error.detail), 404
    return json_response(error.body(), error.status)


def create_app(database_url: str | None = None) -> Flask:
    """Build the legacy Flask app on `database_url` (default: ``LEGACY_DATABASE_URL`` or SQLite).

    Tables are created at start-up; when the database is down then, creation is retried by
    the next request and ``/healthz`` answers 503 meanwhile.
    """
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    db = Database(database_url or database_url_from_env())
    app.extensions[DB_EXTENSION] = db
    if stock_authority() == "inventory":
        # Stock writes go to the inventory service; this database keeps a read copy.
        from legacy_monolith.stock import remote_stock_from_env

        app.extensions[STOCK_EXTENSION] = remote_stock_from_env()
    try:
        db.ensure_schema()
    except DBAPIError as exc:
        log.warning("database not ready at start-up, will retry: %s", exc)

    app.jinja_env.filters["money"] = money
    app.register_blueprint(api)
    app.register_blueprint(pages)

    @app.get("/healthz")
    def healthz() -> Response:
        try:
            get_db().ping()
        except (DBAPIError, PoolTimeout) as exc:
            log.warning("healthz: database unavailable: %s", exc)
            body = {"status": "unavailable", "detail": errors.DATABASE_UNAVAILABLE}
            return json_response(body, 503)
        return json_response({"status": "ok"})

    @app.before_request
    def _schema() -> None:
        if request.path != "/healthz":
            get_db().ensure_schema()

    @app.errorhandler(ShopError)
    def _shop_error(error: ShopError) -> Response | tuple[str, int]:
        return _error_response(error)

    @app.errorhandler(NotFound)
    def _not_found(_error: NotFound) -> Response | tuple[str, int]:
        return _error_response(errors.path_not_found())

    @app.errorhandler(MethodNotAllowed)
    def _method_not_allowed(error: MethodNotAllowed) -> Response:
        response = json_response(errors.method_not_allowed(request.method).body(), 405)
        if error.valid_methods:
            response.headers["Allow"] = ", ".join(sorted(error.valid_methods))
        return response

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(_error: RequestEntityTooLarge) -> Response:
        return json_response(errors.body_too_large().body(), 413)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        code = (error.name or "error").lower().replace(" ", "_")
        status = error.code or 500
        return json_response({"error": code, "detail": error.description or code}, status)

    @app.errorhandler(OperationalError)
    @app.errorhandler(PoolTimeout)
    def _database_down(error: Exception) -> Response:
        log.warning("database unavailable: %s", error)
        return json_response(errors.dependency_unavailable("database").body(), 503)

    @app.errorhandler(Exception)
    def _internal(error: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path, exc_info=error)
        return json_response({"error": "internal_error", "detail": "internal server error"}, 500)

    return app
