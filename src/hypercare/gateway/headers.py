"""Header rewriting between client and upstream, as pure functions over byte pairs.

RFC 9110 §7.6.1: hop-by-hop fields (``Connection`` and those it names, ``Keep-Alive``,
``TE``, ``Trailer``, ``Transfer-Encoding``, ``Upgrade``, ``Proxy-*``) apply to one connection
only and are never forwarded; the proxy re-frames bodies itself. It adds the forwarding headers
(``X-Forwarded-For/-Proto/-Host``, RFC 7239 ``Forwarded``), the request id and the W3C
``traceparent`` (https://www.w3.org/TR/trace-context/ §3.2).
"""

from __future__ import annotations

import ipaddress
import json
import random
import re
from collections.abc import Iterable, Sequence
from urllib.parse import unquote_to_bytes

Headers = list[tuple[bytes, bytes]]

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authorization",
        b"proxy-authenticate",
    }
)
# Set by the gateway itself on the way to the upstream: incoming copies are replaced.
REPLACED_UPSTREAM = frozenset(
    {
        b"host",
        b"content-length",
        b"expect",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"forwarded",
        b"x-request-id",
        b"traceparent",
    }
)
DROP_UPSTREAM = HOP_BY_HOP | REPLACED_UPSTREAM
DROP_DOWNSTREAM = HOP_BY_HOP | frozenset(
    {b"content-length", b"x-request-id", b"x-hypercare-latency"}
)

_TRACEPARENT = re.compile(rb"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
# Ids only need to be unique, not secret: the interpreter's Mersenne Twister (seeded from
# os.urandom at start, so every spawned worker differs) avoids a getrandom() syscall per id.
_getrandbits = random.getrandbits


def new_id128() -> str:
    """32 lowercase hex chars, never all zero (W3C requires a non-zero trace id)."""
    return f"{_getrandbits(128) | 1:032x}"


def new_id64() -> str:
    return f"{_getrandbits(64) | 1:016x}"


def request_id(incoming: bytes | None) -> bytes:
    """The caller's X-Request-Id when it is sane (printable, short), else a fresh one."""
    if incoming and _REQUEST_ID.match(incoming):
        return incoming
    return new_id128().encode()


def traceparent(incoming: bytes | None) -> tuple[str, bytes]:
    """(trace id, traceparent for the upstream): the caller's trace continued, or a new one."""
    if incoming:
        m = _TRACEPARENT.match(incoming.strip().lower())
        if m and m.group(1) != b"0" * 32 and m.group(2) != b"0" * 16:
            trace = m.group(1).decode()
            return trace, b"00-%s-%s-%s" % (m.group(1), new_id64().encode(), m.group(3))
    trace = new_id128()
    return trace, f"00-{trace}-{new_id64()}-01".encode()


def connection_tokens(values: Iterable[bytes]) -> frozenset[bytes]:
    """Lowercased tokens of all Connection headers (they name more hop-by-hop fields)."""
    out: set[bytes] = set()
    for v in values:
        out.update(t.strip().lower() for t in v.split(b",") if t.strip())
    return frozenset(out)


def _quote_forwarded(ip: str) -> str:
    # RFC 7239 §6: IPv6 addresses are bracketed and the value quoted.
    return f'"[{ip}]"' if ":" in ip else ip


def upstream_request_head(
    method: bytes,
    target: bytes,
    headers: Sequence[tuple[bytes, bytes]],
    *,
    host: bytes,
    client_ip: str,
    prior_xff: bytes | None,
    proto: bytes,
    rid: bytes,
    tparent: bytes,
    framing: bytes,
    extra_hop: frozenset[bytes] = frozenset(),
    upgrade: bytes | None = None,
) -> bytes:
    """The request line and headers sent to the upstream.

    `headers` are the client's, already without `DROP_UPSTREAM` names (the parser callback
    filters them); `extra_hop` are names the client's Connection header listed. `prior_xff` is
    the complete X-Forwarded-For when the peer is a trusted proxy (see `client_address`), else
    None and the header is the client's address alone. `framing` is
    a ready ``content-length: N\\r\\n``/``transfer-encoding: chunked\\r\\n`` line or empty.
    """
    xff = prior_xff or client_ip.encode()
    parts = [
        method,
        b" ",
        target,
        b" HTTP/1.1\r\nhost: ",
        host,
        b"\r\n",
    ]
    for name, value in headers:
        if extra_hop and name.lower() in extra_hop:
            continue
        parts += (name, b": ", value, b"\r\n")
    parts += (
        b"x-forwarded-for: ",
        xff,
        b"\r\nx-forwarded-proto: ",
        proto,
        b"\r\nx-forwarded-host: ",
        host,
        b"\r\nforwarded: for=",
        _quote_forwarded(client_ip).encode(),
        b";proto=",
        proto,
        b';host="',
        host.replace(b'"', b""),
        b'"\r\nx-request-id: ',
        rid,
        b"\r\ntraceparent: ",
        tparent,
        b"\r\n",
        framing,
    )
    if upgrade is not None:
        parts += (b"connection: upgrade\r\nupgrade: ", upgrade, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def downstream_response_head(
    status_line: bytes,
    headers: Sequence[tuple[bytes, bytes]],
    *,
    rid: bytes,
    latency_ms: float,
    framing: bytes,
    origin: bool,
    keep_alive: bool,
    expose: bytes | None,
    extra_hop: frozenset[bytes] = frozenset(),
    upgrade: bytes | None = None,
) -> bytes:
    """The status line and headers sent to the client.

    `headers` are the upstream's without `DROP_DOWNSTREAM` names and without
    Access-Control-Expose-Headers, whose value is passed as `expose` so the request id can be
    added to it when the request carried an Origin.
    """
    parts = [status_line]
    for name, value in headers:
        if extra_hop and name.lower() in extra_hop:
            continue
        parts += (name, b": ", value, b"\r\n")
    parts += (b"x-request-id: ", rid, b"\r\nx-hypercare-latency: ", b"%.3f" % latency_ms, b"\r\n")
    if origin:
        if expose is None:
            expose = b"X-Request-Id"
        elif expose.strip() != b"*" and b"x-request-id" not in expose.lower():
            expose += b", X-Request-Id"
    if expose is not None:
        parts += (b"access-control-expose-headers: ", expose, b"\r\n")
    parts.append(framing)
    if upgrade is not None:
        parts += (b"connection: upgrade\r\nupgrade: ", upgrade, b"\r\n\r\n")
    else:
        parts.append(b"\r\n" if keep_alive else b"connection: close\r\n\r\n")
    return b"".join(parts)


def parse_networks(cidrs: Sequence[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(c, strict=False) for c in cidrs]


def client_address(
    peer: str,
    xff: bytes | None,
    trusted: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> tuple[str, bytes | None]:
    """(client IP, X-Forwarded-For to send upstream or None) given the TCP peer and proxies.

    A client's own X-Forwarded-For is only believed when the peer is a trusted proxy; then the
    client is the right-most address that is not itself trusted, and the list sent on is the
    received one plus the peer (each proxy appends the address it got the request from).
    Otherwise the header is dropped and rebuilt from the peer alone.
    """
    if not trusted or not _in(peer, trusted):
        return peer, None
    if not xff:
        return peer, None
    hops = [h.strip().decode("latin-1") for h in xff.split(b",") if h.strip()]
    sent = xff + b", " + peer.encode()
    for hop in reversed(hops):
        if not _in(hop, trusted):
            return hop, sent
    return (hops[0] if hops else peer), sent


def _in(ip: str, nets: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in n for n in nets)


KEY_PARAMS = frozenset({b"apikey", b"api_key"})


def take_query_key(url: bytes) -> tuple[bytes, bytes | None]:
    """(url without the API-key query parameters, the first key's value or None).

    The credential is consumed by the gateway, like the ``apikey`` header: the upstream never
    sees it, and neither does anything that stores the forwarded URL. Names are compared
    percent-decoded, so ``api%6Bey`` is removed too.
    """
    q = url.find(b"?")
    if q < 0:
        return url, None
    key: bytes | None = None
    kept = []
    removed = False
    for part in url[q + 1 :].split(b"&"):
        name, _, value = part.partition(b"=")
        if unquote_to_bytes(name) in KEY_PARAMS:
            removed = True
            if key is None:
                key = unquote_to_bytes(value)
            continue
        kept.append(part)
    if not removed:
        return url, None
    path = url[:q]
    return (path + b"?" + b"&".join(kept) if kept else path), key


def error_body(code: str, message: str) -> bytes:
    """The gateway's own JSON error: {"error": {"code": ..., "message": ...}}."""
    return json.dumps({"error": {"code": code, "message": message}}, separators=(",", ":")).encode()
