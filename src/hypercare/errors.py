"""Every error hypercare raises on purpose, in one tree.

    HypercareError                 base; carries a machine code and a human message
    ├── ConfigError                the YAML file is invalid (file, line, key, what is valid)
    ├── StoreUnavailable           the database cannot be reached or migrated
    ├── StartupError               a process cannot start (port taken, worker failed)
    └── DomainError                a request the domain refuses; mapped to HTTP in one place
        ├── NotFound               404  the thing asked for does not exist
        ├── Conflict               409  the request clashes with the current state
        │   └── InvalidTransition  409  a lifecycle move that is not allowed from here
        ├── InvalidInput           422  well-formed but semantically wrong input
        ├── Unauthenticated        401  no valid credential
        └── Forbidden              403  a valid credential without the needed role

Domain errors never depend on FastAPI or pydantic; `hypercare.api.errors` maps them to
JSON responses of the shape ``{"error": {"code", "message", "details"}}``.
"""

from __future__ import annotations

from typing import Any


class HypercareError(Exception):
    code = "error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ConfigError(HypercareError):
    code = "invalid_config"


class StoreUnavailable(HypercareError):
    code = "store_unavailable"


class StartupError(HypercareError):
    code = "startup_failed"


class DomainError(HypercareError):
    status = 400


class NotFound(DomainError):
    code = "not_found"
    status = 404


class Conflict(DomainError):
    code = "conflict"
    status = 409


class InvalidTransition(Conflict):
    code = "invalid_transition"


class InvalidInput(DomainError):
    code = "invalid_input"
    status = 422


class Unauthenticated(DomainError):
    code = "unauthenticated"
    status = 401


class Forbidden(DomainError):
    code = "forbidden"
    status = 403
