"""Traefik's JSON access log (``accessLog: {format: json}``), one object a line.

Keys read: ``StartUTC``, ``RequestMethod``, ``RequestPath`` (with its query), ``RequestHost``,
``DownstreamStatus``, ``OriginStatus``, ``Duration`` and ``OriginDuration`` (nanoseconds),
``RequestContentSize``, ``DownstreamContentSize``, ``ServiceAddr`` / ``ServiceURL``,
``ServiceName``, ``ClientHost``, ``ClientUsername`` and, when ``accessLog.fields.headers``
keeps them, ``request_X-Request-Id``, ``request_Traceparent`` and ``request_User-Agent``.
"""

from __future__ import annotations

from typing import Any

from hypercare.gateway.records import CallRecord
from hypercare.telemetry.accesslog.base import (
    Match,
    Unparsable,
    error_for_status,
    gateway_ms,
    iso_time,
    need,
    number,
    status,
    text,
    trace_of,
)


def parse(doc: Any, match: Match) -> CallRecord:
    if not isinstance(doc, dict):
        raise Unparsable("not a JSON object")
    start = iso_time(need(doc, "StartUTC"), "StartUTC")
    method = text(doc, "RequestMethod")
    path = text(doc, "RequestPath")
    if not method or not path:
        raise Unparsable('no "RequestMethod" or "RequestPath"')
    code = status(need(doc, "DownstreamStatus"), "DownstreamStatus")
    origin = int(number(doc.get("OriginStatus"), "OriginStatus"))
    total = number(doc.get("Duration"), "Duration") / 1e6
    upstream_ms = number(doc.get("OriginDuration"), "OriginDuration") / 1e6
    target = text(doc, "ServiceAddr")
    url = doc.get("ServiceURL")
    if not target and isinstance(url, dict):
        target = text(url, "Host")
    elif not target and isinstance(url, str):
        target = url.split("://", 1)[-1].split("/", 1)[0]
    host = text(doc, "RequestHost") or text(doc, "RequestAddr")
    path = path.split("?", 1)[0][:2048] or "/"
    route, template = match(host, method, path)
    return CallRecord(
        time=start,
        route=route,
        consumer=text(doc, "ClientUsername"),
        method=method,
        path_template=template,
        path=path,
        status=code,
        request_bytes=int(number(doc.get("RequestContentSize"), "RequestContentSize")),
        response_bytes=int(number(doc.get("DownstreamContentSize"), "DownstreamContentSize")),
        target=target,
        gateway_ms=gateway_ms(total, upstream_ms),
        upstream_ms=upstream_ms,
        total_ms=total,
        error=error_for_status(code, origin != 0) if code >= 499 else "",
        client_ip=text(doc, "ClientHost"),
        request_id=text(doc, "request_X-Request-Id"),
        trace_id=trace_of(text(doc, "request_Traceparent")),
        upstream=text(doc, "ServiceName"),
        user_agent=text(doc, "request_User-Agent"),
    )
