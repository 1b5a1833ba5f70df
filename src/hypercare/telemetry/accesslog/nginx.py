"""nginx access logs written as JSON by a ``log_format … escape=json`` (one object a line).

The format Hypercare documents is `LOG_FORMAT` below (docs/configuration.md, "Access logs"
from gateways you already run" prints it whole).

The widely used ``json_analytics`` format (Grafana dashboard 12559) is read too: it names the
upstream address ``upstream`` and the host ``http_host``. nginx writes every value as a
string, "" when a variable is empty; ``$upstream_*`` hold one value per upstream tried
(``"a:80, b:80"``), the last one is the one that answered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, cast

import msgspec

from hypercare.gateway.records import CallRecord
from hypercare.telemetry.accesslog.base import (
    Match,
    Unparsable,
    error_for_status,
    gateway_ms,
    last_of,
    need,
    number,
    status,
    text,
    trace_of,
)

LOG_FORMAT = (
    "log_format hypercare escape=json '{"
    '"msec":"$msec","request_id":"$request_id","request_method":"$request_method",'
    '"request_uri":"$request_uri","host":"$host","status":"$status",'
    '"request_length":"$request_length","body_bytes_sent":"$body_bytes_sent",'
    '"request_time":"$request_time","upstream_addr":"$upstream_addr",'
    '"upstream_status":"$upstream_status","upstream_header_time":"$upstream_header_time",'
    '"upstream_response_time":"$upstream_response_time","remote_addr":"$remote_addr",'
    '"remote_user":"$remote_user","http_user_agent":"$http_user_agent",'
    '"http_traceparent":"$http_traceparent"'
    "}';"
)


def _upstream_seconds(value: str) -> float:
    # one value per upstream tried: the call spent their sum waiting for upstreams
    if "," in value or " : " in value:
        return sum(
            number(v.strip(), "upstream_response_time")
            for v in value.replace(" : ", ",").split(",")
        )
    return number(value, "upstream_response_time")


def parse(doc: Any, match: Match) -> CallRecord:
    if not isinstance(doc, dict):
        raise Unparsable("not a JSON object")
    end = number(need(doc, "msec"), "msec")
    method = text(doc, "request_method")
    uri = text(doc, "request_uri") or text(doc, "uri")
    if not method or not uri:
        request = text(doc, "request")  # "GET /path HTTP/1.1"
        parts = request.split(" ")
        if len(parts) < 2:
            raise Unparsable('no "request_method" and "request_uri" (or "request")')
        method, uri = method or parts[0], uri or parts[1]
    code = status(need(doc, "status"), "status")
    total = number(doc.get("request_time"), "request_time") * 1000.0
    upstream_ms = _upstream_seconds(text(doc, "upstream_response_time")) * 1000.0
    target = last_of(text(doc, "upstream_addr") or text(doc, "upstream"))
    up_status = last_of(text(doc, "upstream_status"))
    header_time = last_of(text(doc, "upstream_header_time", "-"))
    # nginx made the 502/504 itself when the upstream never sent a header
    answered = bool(up_status) and not (
        code in (502, 504) and up_status == str(code) and header_time in ("-", "")
    )
    host = text(doc, "host") or text(doc, "http_host")
    path = uri.split("?", 1)[0][:2048] or "/"
    route, template = match(host, method, path)
    return CallRecord(
        time=end - total / 1000.0,
        route=route,
        consumer=text(doc, "remote_user"),
        method=method,
        path_template=template,
        path=path,
        status=code,
        request_bytes=int(number(doc.get("request_length"), "request_length")),
        response_bytes=int(
            number(doc.get("body_bytes_sent", doc.get("bytes_sent")), "body_bytes_sent")
        ),
        target=target,
        gateway_ms=gateway_ms(total, upstream_ms),
        upstream_ms=upstream_ms,
        total_ms=total,
        error=error_for_status(code, answered) if code >= 499 else "",
        client_ip=text(doc, "remote_addr"),
        request_id=text(doc, "request_id"),
        trace_id=trace_of(text(doc, "http_traceparent")),
        upstream="",
        user_agent=text(doc, "http_user_agent"),
    )


# --- the fast path: a line in the documented format, decoded in one C-level pass -------------

_EXACT = 2**53  # the careful path reads numbers as floats: exact below this


class _Line(msgspec.Struct, gc=False):
    """The documented format's fields, decoded and checked in one C-level pass. nginx writes
    every value as a string; numbers are read from those strings by msgspec (``strict=False``:
    a string or a number, never a bool or null). What it refuses (a field missing, "" or "-"
    where a number goes, a status outside 100-599, a byte count `float` would round,
    ``json_analytics``'s names) fails the decode, and the careful `parse` reads the line
    instead; what it accepts, `parse` reads the same. `upstream` is not in the documented
    format: a line with it goes to the careful path, which reads it when `upstream_addr` is
    empty."""

    msec: float
    request_method: Annotated[str, msgspec.Meta(min_length=1)]
    request_uri: Annotated[str, msgspec.Meta(min_length=1)]
    host: Annotated[str, msgspec.Meta(min_length=1)]
    status: Annotated[int, msgspec.Meta(ge=100, lt=600)]
    request_time: float
    upstream_addr: str
    body_bytes_sent: Annotated[int, msgspec.Meta(ge=0, lt=_EXACT)]  # else `bytes_sent`
    request_id: str = ""
    request_length: Annotated[int, msgspec.Meta(ge=0, lt=_EXACT)] = 0
    upstream_status: str = ""
    upstream_header_time: str = ""
    upstream_response_time: str = ""
    remote_addr: str = ""
    remote_user: str = ""
    http_user_agent: str = ""
    http_traceparent: str = ""
    upstream: str | None = None


_DECODE = msgspec.json.Decoder(_Line, strict=False).decode
_SIMPLE = frozenset("0123456789.")
# a CallRecord from a tuple of its fields in order, without a Python-level __new__ per record
_record = cast(Callable[[type[CallRecord], tuple[Any, ...]], CallRecord], tuple.__new__)


def parse_line(line: bytes, match: Match) -> CallRecord | None:
    """`parse` of one line in the documented format, about three times faster; None when
    the line is anything else (then `parse` reads it, or says what is wrong)."""
    try:
        d = _DECODE(line)
    except msgspec.DecodeError:  # also ValidationError: see `_Line`
        return None
    if d.upstream is not None:
        return None
    if "-" in (
        d.request_id,
        d.request_method,
        d.request_uri,
        d.host,
        d.upstream_addr,
        d.remote_addr,
        d.remote_user,
        d.http_user_agent,
    ):
        return None  # how proxies write "no value": the careful path reads it as ""
    up_time = d.upstream_response_time
    if up_time:
        if not _SIMPLE.issuperset(up_time):
            return None  # several upstreams tried ("0.1, 0.2") or "-": the careful path
        try:
            upstream_ms = float(up_time) * 1000.0
        except ValueError:
            return None
        if upstream_ms >= 1e12:
            return None
    else:
        upstream_ms = 0.0
    total = d.request_time * 1000.0
    if not 0 <= total < 1e12:
        return None
    target = d.upstream_addr
    target = last_of(target) if "," in target or " " in target else target.strip()
    code = d.status
    error = ""
    if code >= 499:
        up_status = last_of(d.upstream_status) if d.upstream_status != "-" else ""
        header = last_of(d.upstream_header_time) or "-"
        answered = bool(up_status) and not (
            code in (502, 504) and up_status == str(code) and header == "-"
        )
        error = error_for_status(code, answered)
    path = d.request_uri
    if "?" in path or len(path) > 2048:
        path = path.split("?", 1)[0][:2048] or "/"
    route, template = match(d.host, d.request_method, path)
    tp = d.http_traceparent
    return _record(
        CallRecord,
        (
            d.msec - total / 1000.0,
            route,
            d.remote_user,
            d.request_method,
            template,
            path,
            code,
            d.request_length,
            d.body_bytes_sent,
            target,
            total - upstream_ms if total > upstream_ms else 0.0,
            upstream_ms,
            total,
            error,
            d.remote_addr,
            d.request_id,
            trace_of(tp) if tp else "",
            "",
            d.http_user_agent,
        ),
    )
