"""Roles, what each may do, and token hashing — pure functions, no I/O.

Roles are ordered: a role may do everything the roles below it may do.

    viewer     read everything
    support    + create issues and feedback, comment
    responder  + triage: change priority, assign, transition
    admin      + configure: tokens, integrations, settings
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from enum import StrEnum

TOKEN_PREFIX = "hc_"


class Role(StrEnum):
    viewer = "viewer"
    support = "support"
    responder = "responder"
    admin = "admin"


_RANK = {Role.viewer: 0, Role.support: 1, Role.responder: 2, Role.admin: 3}


def allows(held: Role, needed: Role) -> bool:
    return _RANK[held] >= _RANK[needed]


def new_token() -> str:
    """A fresh bearer token: 256 random bits, URL-safe, recognisable by its prefix."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """SHA-256 of the token. Tokens are long random strings, so a fast hash is enough."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a, b)


def display_prefix(token: str) -> str:
    """The first characters of a token, safe to show so people can tell tokens apart."""
    return token[: len(TOKEN_PREFIX) + 4]
