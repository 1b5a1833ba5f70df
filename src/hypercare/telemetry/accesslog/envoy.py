"""Envoy's JSON access log (``json_format``), as Envoy Gateway writes it by default.

Keys read (Envoy Gateway's default format; plain Envoy needs a ``json_format`` with these
keys, see docs/configuration.md): ``start_time``, ``method``, ``x-envoy-origin-path``,
``:authority``, ``response_code``, ``response_flags``, ``bytes_received``, ``bytes_sent``,
``duration``, ``x-envoy-upstream-service-time``, ``upstream_host``, ``upstream_cluster``,
``downstream_remote_address``, ``x-forwarded-for``, ``user-agent``, ``x-request-id`` and,
when the format adds it, ``traceparent``. Values may be typed (numbers, null) or all strings
with ``"-"`` for empty (older Envoy Gateway): both are read.
"""

from __future__ import annotations

from typing import Any

from hypercare.gateway.records import CallRecord
from hypercare.telemetry.accesslog.base import (
    Match,
    Unparsable,
    gateway_ms,
    iso_time,
    need,
    number,
    status,
    text,
    trace_of,
)

# Envoy's response flags (short form) -> Hypercare's error kinds; the first that applies wins
_FLAGS = {
    "UF": "connect_failed",  # upstream connection failure
    "UH": "no_healthy_target",  # no healthy upstream
    "NC": "no_healthy_target",  # no upstream cluster
    "UT": "timeout",  # upstream request timeout
    "SI": "timeout",  # stream idle timeout
    "UR": "reset",  # upstream remote reset
    "UC": "reset",  # upstream connection termination
    "UO": "reset",  # upstream overflow (circuit breaking)
    "UPE": "bad_response",  # upstream protocol error
    "DC": "client_closed",  # downstream connection termination
    "DPE": "bad_request",  # downstream protocol error
    "RL": "rate_limited",  # local or global rate limit
    "UAEX": "auth",  # external authorization denied
    "NR": "no_route",  # no route configured
}


def _error(flags: str, code: int) -> str:
    for flag in flags.split(","):
        kind = _FLAGS.get(flag.strip())
        if kind:
            return kind
    return "client_closed" if code == 0 else ""


def parse(doc: Any, match: Match) -> CallRecord:
    if not isinstance(doc, dict):
        raise Unparsable("not a JSON object")
    start = iso_time(need(doc, "start_time"), "start_time")
    method = text(doc, "method")
    path = text(doc, "x-envoy-origin-path") or text(doc, ":path")
    if not method or not path:
        raise Unparsable('no "method" or "x-envoy-origin-path"')
    code = status(doc.get("response_code"), "response_code")
    total = number(doc.get("duration"), "duration")
    upstream_ms = number(doc.get("x-envoy-upstream-service-time"), "x-envoy-upstream-service-time")
    client = text(doc, "x-forwarded-for").split(",", 1)[0].strip()
    if not client:
        client = text(doc, "downstream_remote_address").rpartition(":")[0]
    path = path.split("?", 1)[0][:2048] or "/"
    route, template = match(text(doc, ":authority"), method, path)
    return CallRecord(
        time=start,
        route=route,
        consumer="",
        method=method,
        path_template=template,
        path=path,
        status=code,
        request_bytes=int(number(doc.get("bytes_received"), "bytes_received")),
        response_bytes=int(number(doc.get("bytes_sent"), "bytes_sent")),
        target=text(doc, "upstream_host"),
        gateway_ms=gateway_ms(total, upstream_ms),
        upstream_ms=upstream_ms,
        total_ms=total,
        error=_error(text(doc, "response_flags"), code),
        client_ip=client,
        request_id=text(doc, "x-request-id"),
        trace_id=trace_of(text(doc, "traceparent")),
        upstream=text(doc, "upstream_cluster"),
        user_agent=text(doc, "user-agent"),
    )
