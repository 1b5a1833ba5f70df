"""Map every error to the JSON shape ``{"error": {"code", "message", "details"}}``.

Domain errors carry their own status; validation errors become 422 with one entry per
field; a client that left before its body arrived gets a 400 nobody reads (logged at INFO,
it is not a server error); a database connection lost under a request (a restart, a
failover) a 503 with ``Retry-After``; anything unexpected is logged with its traceback and
answered with a bare 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from hypercare.errors import DomainError

log = logging.getLogger("hypercare.api")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "rate_limited",
}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for e in exc.errors():
        loc = [str(p) for p in e.get("loc", ())]
        out.append({"field": ".".join(loc), "message": e.get("msg", ""), "type": e.get("type")})
    return out


async def invalid_request(_: Request, exc: Exception) -> JSONResponse:
    """FastAPI's validation error as a 422 with one detail per field."""
    if not isinstance(exc, RequestValidationError):
        raise exc
    details = _validation_details(exc)
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5])
    return JSONResponse(
        error_body("invalid_input", f"the request is not valid: {summary}", details),
        status_code=422,
    )


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's HTTP errors (unknown URL, wrong method...) in the error shape; a 405
    names every method the path takes, in the message and in `Allow`."""
    if not isinstance(exc, StarletteHTTPException):
        raise exc
    code = _HTTP_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    headers = exc.headers
    if exc.status_code == 405:
        allow = allowed_methods(request)
        headers = {**(headers or {}), "Allow": allow}
        message = f"{request.method} is not allowed here; allowed: {allow}"
    return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=headers)


def allowed_methods(request: Request) -> str:
    """Every method some route takes for this path. The router stops at the first route
    whose path matches, so its own 405 names only that route's methods (GET where PATCH
    is allowed too)."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        if route.methods and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods
    return ", ".join(sorted(methods))


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(
            error_body(exc.code, exc.message, exc.details), status_code=exc.status, headers=headers
        )

    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, _: ClientDisconnect) -> JSONResponse:
        # the client hung up before its body arrived (a gateway node whose batch waited in
        # the backlog of a restarting console gives up and re-sends it): nothing failed here
        log.info(
            "%s %s: the client left before its request body arrived",
            request.method,
            request.url.path,
        )
        return JSONResponse(
            error_body("client_disconnected", "the request body did not arrive"),
            status_code=400,
        )

    @app.exception_handler(DBAPIError)
    async def _store(request: Request, exc: DBAPIError) -> JSONResponse:
        if not exc.connection_invalidated:
            return await _unexpected(request, exc)
        # the database dropped the connection (a restart, a failover): the pool replaces its
        # connections, and the same request a moment later goes through
        log.warning(
            "%s %s: the database connection was lost (%s)",
            request.method,
            request.url.path,
            exc.orig,
        )
        return JSONResponse(
            error_body("store_unavailable", "the database connection was lost; retry"),
            status_code=503,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            error_body("internal", "internal error; the console log has the details"),
            status_code=500,
        )
