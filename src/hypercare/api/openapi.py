"""The OpenAPI document: what FastAPI derives from the routes, plus what it cannot see.

FastAPI knows the parameters and the success bodies. It does not know that the API
authenticates with bearer tokens (the role checks are dependencies reading a header), nor
the error answers, which all share one body (`hypercare.api.errors`). Both are added here
for every operation, so clients and the property-based tests can rely on the document.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

API_PREFIX = "/api/v1"


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable, e.g. not_found, invalid_input")
    message: str = Field(description="what went wrong and how to fix it")
    details: Any = Field(default=None, description="per-field problems, limits, allowed moves")


class ErrorBody(BaseModel):
    """Every error answer of the API."""

    error: ErrorDetail


_WHY = {
    400: "The body cannot be read (not JSON, or not UTF-8)",
    401: "Missing, invalid or revoked token",
    403: "The token's role is too low, or the origin is not allowed",
    404: "No such resource",
    409: "Conflicts with the current state (e.g. a lifecycle move not allowed from here)",
    413: "Request body over the size limit",
    422: "Invalid input: details has one entry per field",
    429: "Too many requests; retry after Retry-After seconds",
    503: "The store is not reachable",
}

# operations that take other credentials than (or besides) an API token
_SCHEMES: dict[str, dict[str, Any]] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token (`hypercare token create`), or a node token for telemetry",
    },
    "integrationToken": {
        "type": "apiKey",
        "in": "query",
        "name": "token",
        "description": "An integration's token, for tools that can only paste a URL",
    },
    "widgetKey": {
        "type": "apiKey",
        "in": "query",
        "name": "key",
        "description": "A public widget key (origin-checked)",
    },
}
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
_SECURITY: dict[tuple[str, str], list[dict[str, list[str]]]] = {
    ("post", "/api/v1/feedback"): [{"bearer": []}, {"widgetKey": []}],
    ("post", "/api/v1/integrations/{integration_id}/webhook"): [
        {"bearer": []},
        {"integrationToken": []},
    ],
    ("post", "/api/v1/integrations/{integration_id}/v2/enqueue"): [
        {"bearer": []},
        {"integrationToken": []},
        {},  # the token may be the event's routing_key instead
    ],
}
_EXTRA: dict[tuple[str, str], tuple[int, ...]] = {
    ("post", "/api/v1/feedback"): (429,),
    ("get", "/readyz"): (503,),
}


def error_statuses(method: str, path: str) -> list[int]:
    """The error answers an operation can give."""
    statuses = [422]
    if path.startswith(API_PREFIX):
        statuses += [401, 403, 404]
        if method in ("post", "put", "patch", "delete"):
            statuses += [409]
        if method in ("post", "put", "patch"):
            statuses += [400, 413]
    return sorted([*statuses, *_EXTRA.get((method, path), ())])


def document(app: FastAPI) -> dict[str, Any]:
    """The complete OpenAPI document of `app`."""
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    error = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error.pop("$defs", {}))
    schemas["ErrorBody"] = error
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    components["securitySchemes"] = _SCHEMES
    ref = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if path.startswith(API_PREFIX):
                operation["security"] = _SECURITY.get((method, path), _BEARER)
            responses = operation.setdefault("responses", {})
            for status in error_statuses(method, path):
                responses[str(status)] = {"description": _WHY[status], "content": ref}
    return schema


def install(app: FastAPI) -> None:
    """Serve `document(app)` at the app's openapi_url, built once on first use."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
