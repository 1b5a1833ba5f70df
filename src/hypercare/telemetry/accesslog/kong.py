"""Kong's log plugins (http-log, file-log, tcp-log...): one JSON log object per call.

The http-log plugin POSTs one object, or an array of them when its queue batches
(``queue.max_batch_size`` > 1). Fields read: ``started_at`` (ms), ``request.method``,
``request.uri``, ``request.headers.host``, ``request.size``, ``request.id`` (Kong 3.5+, else
the ``x-kong-request-id`` answer header or an ``x-request-id`` request header),
``response.status``, ``response.size``, ``latencies`` (``request`` total, ``proxy`` upstream,
``kong``), ``tries`` (the last is the target that answered), ``upstream_status``, ``source``
(``upstream``, ``kong`` or ``exit``), ``service.name``, ``consumer.username`` and
``client_ip``. Kong's route name is not used: the call's route is the ``external_routes:``
entry its host, method and path match.
"""

from __future__ import annotations

from typing import Any

from hypercare.gateway.records import CallRecord
from hypercare.telemetry.accesslog.base import (
    Match,
    error_for_status,
    gateway_ms,
    need,
    number,
    obj,
    request_head,
    text,
    trace_of,
)

_KONG_ERRORS = {401: "auth", 403: "auth", 429: "rate_limited", 404: "no_route"}


def parse(doc: Any, match: Match) -> CallRecord:
    request, response, method, uri, code = request_head(doc)
    start = number(need(doc, "started_at"), "started_at") / 1000.0
    lat = obj(doc, "latencies")
    total = number(lat.get("request"), "latencies.request")
    upstream_ms = max(0.0, number(lat.get("proxy"), "latencies.proxy"))
    headers = obj(request, "headers")
    tries = doc.get("tries")
    target = ""
    if isinstance(tries, list) and tries and isinstance(tries[-1], dict):
        last = tries[-1]
        target = f"{text(last, 'ip')}:{text(last, 'port')}" if text(last, "ip") else ""
    source = text(doc, "source")
    answered = bool(text(doc, "upstream_status")) or source == "upstream"
    if source in ("kong", "exit") and code in _KONG_ERRORS:
        error = _KONG_ERRORS[code]
    else:
        error = error_for_status(code, answered) if code >= 499 else ""
    consumer = obj(doc, "consumer")
    request_id = (
        text(request, "id")
        or text(obj(response, "headers"), "x-kong-request-id")
        or text(headers, "x-request-id")
    )
    path = uri.split("?", 1)[0][:2048] or "/"
    route, template = match(text(headers, "host"), method, path)
    return CallRecord(
        time=start,
        route=route,
        consumer=text(consumer, "username") or text(consumer, "custom_id"),
        method=method,
        path_template=template,
        path=path,
        status=code,
        request_bytes=int(number(request.get("size"), "request.size")),
        response_bytes=int(number(response.get("size"), "response.size")),
        target=target,
        gateway_ms=max(0.0, number(lat.get("kong"), "latencies.kong"))
        if "kong" in lat
        else gateway_ms(total, upstream_ms),
        upstream_ms=upstream_ms,
        total_ms=total,
        error=error,
        client_ip=text(doc, "client_ip"),
        request_id=request_id,
        trace_id=trace_of(text(headers, "traceparent")),
        upstream=text(obj(doc, "service"), "name"),
        user_agent=text(headers, "user-agent"),
    )
