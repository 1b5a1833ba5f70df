"""Apache APISIX's http-logger plugin (default log format): one JSON entry per call.

The plugin POSTs an array of entries (its batch processor), or one object with
``batch_max_size: 1``. Fields read: ``start_time`` (ms), ``request.method``, ``request.uri``,
``request.headers.host``, ``request.size``, ``response.status``, ``response.size``,
``latency`` (total ms), ``upstream_latency``, ``apisix_latency``, ``upstream`` (the target
address), ``consumer.username``, ``client_ip`` and the ``x-request-id`` request header (the
request-id plugin sets it) or answer header.
"""

from __future__ import annotations

from typing import Any

from hypercare.gateway.records import CallRecord
from hypercare.telemetry.accesslog.base import (
    Match,
    error_for_status,
    gateway_ms,
    last_of,
    need,
    number,
    obj,
    request_head,
    text,
    trace_of,
)


def parse(doc: Any, match: Match) -> CallRecord:
    request, response, method, uri, code = request_head(doc)
    start = number(need(doc, "start_time"), "start_time") / 1000.0
    total = number(doc.get("latency"), "latency")
    upstream_ms = max(0.0, number(doc.get("upstream_latency"), "upstream_latency"))
    target = last_of(text(doc, "upstream"))
    headers = obj(request, "headers")
    request_id = text(headers, "x-request-id") or text(obj(response, "headers"), "x-request-id")
    path = uri.split("?", 1)[0][:2048] or "/"
    route, template = match(text(headers, "host"), method, path)
    return CallRecord(
        time=start,
        route=route,
        consumer=text(obj(doc, "consumer"), "username"),
        method=method,
        path_template=template,
        path=path,
        status=code,
        request_bytes=int(number(request.get("size"), "request.size")),
        response_bytes=int(number(response.get("size"), "response.size")),
        target=target,
        gateway_ms=max(0.0, number(doc.get("apisix_latency"), "apisix_latency"))
        if "apisix_latency" in doc
        else gateway_ms(total, upstream_ms),
        upstream_ms=upstream_ms,
        total_ms=total,
        error=error_for_status(code, bool(target)) if code >= 499 else "",
        client_ip=text(doc, "client_ip"),
        request_id=request_id,
        trace_id=trace_of(text(headers, "traceparent")),
        upstream=text(doc, "service_id"),
        user_agent=text(headers, "user-agent"),
    )
