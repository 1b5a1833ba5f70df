"""Pure decisions on a parsed request head and on an upstream's protocol switch.

The protocol class (`server.ClientConnection`) collects the head; these functions decide, with
no I/O, whether it is refused (`Refusal`: `check_head` before routing, `check_route` after) and
whether an ``Upgrade`` is honoured. Only a
WebSocket handshake (RFC 6455 §4.1) on a route with ``websocket: true`` becomes a tunnel; every
other upgrade token (``h2c``, ``TLS/1.2``, ...) is dropped and the request proxied as a plain one,
which RFC 9110 §7.8 allows ("a server MAY ignore a received Upgrade header field").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from typing import NamedTuple

# RFC 6455 §1.3: the GUID appended to the client's key before hashing.
WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Refusal(NamedTuple):
    """The gateway's own answer to a request it will not forward."""

    status: int
    kind: str  # the call record's error kind
    code: str  # the JSON error code
    message: str


def check_head(method: str, version: str, raw_path: bytes, has_host: bool) -> Refusal | None:
    """Refuse a request line or head the gateway cannot forward faithfully."""
    if version not in ("1.1", "1.0"):
        return Refusal(505, "bad_request", "bad_version", f"HTTP/{version} is not supported")
    if method == "CONNECT" or not raw_path.startswith(b"/"):
        return Refusal(400, "bad_request", "bad_request", "the request target must be a path")
    if version == "1.1" and not has_host:
        # RFC 9112 §3.2: a server MUST respond 400 to an HTTP/1.1 request without Host.
        return Refusal(400, "bad_request", "bad_request", "the Host header is missing")
    return None


def check_route(
    method: str,
    *,
    matched: bool,
    method_not_allowed: bool,
    content_length: int | None,
    max_body: int,
) -> Refusal | None:
    """Refuse a request no route takes (404, or 405 when a route takes the path with another
    method), or whose declared body exceeds the matched route's `max_body` (413)."""
    if not matched:
        if method_not_allowed:
            return Refusal(405, "no_route", "method_not_allowed", f"{method} is not allowed here")
        return Refusal(404, "no_route", "no_route", "no route matches this request")
    if content_length is not None and content_length > max_body:
        return Refusal(413, "too_large", "body_too_large", "the request body is too large")
    return None


def upgrade_tokens(value: bytes) -> frozenset[bytes]:
    """Lowercased protocol names of an Upgrade header (``websocket``, ``h2c``; versions cut)."""
    out = set()
    for part in value.split(b","):
        name = part.strip().split(b"/", 1)[0].strip().lower()
        if name:
            out.add(name)
    return frozenset(out)


def valid_websocket_key(key: bytes | None) -> bool:
    """RFC 6455 §4.1 item 7: the key is base64 of 16 random bytes."""
    if key is None:
        return False
    try:
        return len(base64.b64decode(key.strip(), validate=True)) == 16
    except (binascii.Error, ValueError):
        return False


def websocket_upgrade(
    upgrade: bytes | None,
    *,
    allowed: bool,
    method: str,
    version: str,
    key: bytes | None,
    has_body: bool,
) -> Refusal | bool:
    """Whether a request that asked to upgrade (Connection: upgrade + Upgrade) becomes a tunnel.

    True: forward it as a WebSocket handshake. False: drop the upgrade and proxy a plain request.
    A `Refusal` when the route takes WebSockets but the handshake is malformed (RFC 6455 §4.2.1:
    answer 400).
    """
    if upgrade is None or not allowed or b"websocket" not in upgrade_tokens(upgrade):
        return False
    if method != "GET" or version != "1.1":
        return Refusal(
            400, "bad_request", "bad_request", "a WebSocket handshake must be an HTTP/1.1 GET"
        )
    if has_body:
        return Refusal(400, "bad_request", "bad_request", "a WebSocket handshake has no body")
    if not valid_websocket_key(key):
        return Refusal(
            400,
            "bad_request",
            "bad_request",
            "Sec-WebSocket-Key must be the base64 of 16 bytes (RFC 6455 §4.1)",
        )
    return True


def websocket_accept(key: bytes) -> bytes:
    """The Sec-WebSocket-Accept an upstream must answer to `key` (RFC 6455 §4.2.2 item 5.4)."""
    return base64.b64encode(hashlib.sha1(key.strip() + WEBSOCKET_GUID).digest())


def check_switch(
    requested: bool,
    key: bytes | None,
    upgrade: bytes | None,
    headers: Sequence[tuple[bytes, bytes]],
) -> str | None:
    """Why an upstream's ``101 Switching Protocols`` must not become a tunnel, or None.

    `requested` is whether the gateway forwarded a WebSocket handshake at all; an upstream that
    switches protocols on a plain request, to something other than ``websocket``, or with an
    accept value that does not match the key is refused (502), so a tunnel only ever carries a
    WebSocket the route allows.
    """
    if not requested or key is None:
        return "the upstream switched protocols on a request that did not ask for it"
    if upgrade is None or upgrade_tokens(upgrade) != {b"websocket"}:
        return "the upstream switched to a protocol other than websocket"
    accepts = [v.strip() for n, v in headers if n.lower() == b"sec-websocket-accept"]
    if len(accepts) != 1 or not hmac.compare_digest(accepts[0], websocket_accept(key)):
        return "the upstream's Sec-WebSocket-Accept does not match the key (RFC 6455 §4.2.2)"
    return None
