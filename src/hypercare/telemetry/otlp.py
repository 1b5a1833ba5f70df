"""OTLP/HTTP decoding: OpenTelemetry spans and log records become call records.

Pure functions over bytes and plain data (the HTTP side is `otlp_views.py`): a request body
is decompressed (`gunzip`, bounded), decoded with the official ``opentelemetry-proto``
messages from protobuf or from OTLP's JSON encoding (`decode_traces`, `decode_logs`), and
every server span (or any span carrying ``http.route`` / ``url.path``) becomes a
`CallRecord` (`calls_of_traces`) that the console stores through the same ingest as the
gateway's records.

How a span maps to a call (semantic conventions, old names accepted too):

=================  ==========================================================================
route              the declared external route matching host + method + ``url.path``, else
                   the one matching ``http.route``, else the catch-all with ``http.route`` or
                   the normalized path as template (see `external.py`)
status             ``http.response.status_code`` (``http.status_code``); without one, 500
                   when the span's status is ERROR, else 200
latency            end - start of the span (``total_ms`` and ``upstream_ms``)
error kind         from exception events (``exception.type``: timeouts, refused and reset
                   connections), else from the status code (401/403 auth, 429 rate_limited)
upstream           the resource's ``service.name``
consumer           the attribute named by ``telemetry.otlp.consumer_attribute``
request id         ``http.request.header.x-request-id`` when present, else the span id
=================  ==========================================================================
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import math
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from hypercare.gateway.records import CallRecord
from hypercare.telemetry.external import CATCH_ALL, MAX_PATH, ExternalRoutes, normalize_path

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# bodies bigger than this once decompressed are refused (413); collectors batch far less
MAX_DECODED = 64 << 20
MAX_SAMPLE = 300

_SERVER = 2  # Span.SpanKind.SPAN_KIND_SERVER
_STATUS_ERROR = 2  # Status.StatusCode.STATUS_CODE_ERROR
# earliest and latest plausible span start (as the native wire checks record times)
_EARLIEST, _LATEST = 1e9, 4102444800.0


class Malformed(Exception):
    """The body cannot be read as an OTLP export request (answered 400)."""


class TooLarge(Exception):
    """The body is over `MAX_DECODED` once decompressed (answered 413)."""


class Unsupported(Exception):
    """An encoding or content type we do not read (answered 415)."""


def gunzip(body: bytes, encoding: str, limit: int = MAX_DECODED) -> bytes:
    """`body` decoded per its Content-Encoding (``gzip``, ``deflate`` or none), at most
    `limit` bytes of output (`TooLarge` beyond: a small bomb cannot blow up memory)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        if len(body) > limit:
            raise TooLarge(f"the body is over {limit} bytes")
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise Unsupported(f"unsupported Content-Encoding {encoding!r}; send gzip or none")
    wbits = 16 + zlib.MAX_WBITS if encoding != "deflate" else zlib.MAX_WBITS
    d = zlib.decompressobj(wbits)
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error as exc:
        raise Malformed(f"the body is not valid {encoding}: {exc}") from None
    if len(out) > limit or d.unconsumed_tail:
        raise TooLarge(f"the body is over {limit} bytes once decompressed")
    if not d.eof:
        raise Malformed(f"the {encoding} body is truncated")
    return out


def media_type(content_type: str) -> str:
    """`PROTOBUF` or `JSON` for a Content-Type header, else `Unsupported`."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind in (PROTOBUF, "application/protobuf", "application/vnd.google.protobuf"):
        return PROTOBUF
    if kind == JSON:
        return JSON
    raise Unsupported(
        f"unsupported Content-Type {content_type!r}; OTLP/HTTP sends {PROTOBUF} or {JSON}"
    )


# --- OTLP/JSON: ids are hex, not base64 as protobuf's JSON mapping has them ------------

_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id"})


def _hex_ids_to_base64(node: Any, depth: int = 0) -> None:
    if depth > 64:
        raise Malformed("the JSON body nests too deep")
    if isinstance(node, dict):
        for k, v in node.items():
            if k in _ID_KEYS and isinstance(v, str):
                try:
                    node[k] = base64.b64encode(bytes.fromhex(v)).decode()
                except ValueError:
                    raise Malformed(f"{k} {v[:40]!r} is not hex (OTLP/JSON ids are hex)") from None
            elif isinstance(v, dict | list):
                _hex_ids_to_base64(v, depth + 1)
    elif isinstance(node, list):
        for v in node:
            if isinstance(v, dict | list):
                _hex_ids_to_base64(v, depth + 1)


def _from_json(body: bytes, message: Any) -> None:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise Malformed(f"the body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise Malformed("the body must be a JSON object (an OTLP export request)")
    _hex_ids_to_base64(doc)
    try:
        json_format.ParseDict(doc, message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise Malformed(f"the body is not an OTLP export request: {str(exc)[:200]}") from None


def decode_traces(body: bytes, kind: str) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    if kind == JSON:
        _from_json(body, req)
        return req
    try:
        req.ParseFromString(body)
    except (DecodeError, RecursionError) as exc:
        raise Malformed(f"the body is not an OTLP protobuf trace export: {exc}") from None
    return req


def decode_logs(body: bytes, kind: str) -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    if kind == JSON:
        _from_json(body, req)
        return req
    try:
        req.ParseFromString(body)
    except (DecodeError, RecursionError) as exc:
        raise Malformed(f"the body is not an OTLP protobuf logs export: {exc}") from None
    return req


def encode_response(signal: str, kind: str, rejected: int = 0, message: str = "") -> bytes:
    """The export response in the request's encoding, with partial_success when some
    items were rejected."""
    resp: ExportTraceServiceResponse | ExportLogsServiceResponse
    if signal == "traces":
        resp = ExportTraceServiceResponse()
        if rejected:
            resp.partial_success.rejected_spans = rejected
            resp.partial_success.error_message = message
    else:
        resp = ExportLogsServiceResponse()
        if rejected:
            resp.partial_success.rejected_log_records = rejected
            resp.partial_success.error_message = message
    if kind == JSON:
        return json_format.MessageToJson(resp, indent=None).encode()
    return resp.SerializeToString()


def batch_key(signal: str, body: bytes) -> str:
    """An idempotency key from the decoded body: a collector retrying the same export
    is counted once (the store refuses a batch key it has)."""
    return f"otlp-{signal[0]}-{hashlib.blake2b(body, digest_size=16).hexdigest()}"


# --- spans to calls -----------------------------------------------------------------------

# attribute -> (field, how to read its value); old semantic-convention names map to the same
_STR, _INT = 0, 1
_ATTRS: dict[str, tuple[str, int]] = {
    "http.request.method": ("method", _STR),
    "http.method": ("method", _STR),
    "url.path": ("path", _STR),
    "http.target": ("target", _STR),
    "url.full": ("url", _STR),
    "http.url": ("url", _STR),
    "http.route": ("route", _STR),
    "server.address": ("host", _STR),
    "http.host": ("host", _STR),
    "net.host.name": ("host", _STR),
    "http.response.status_code": ("status", _INT),
    "http.status_code": ("status", _INT),
    "client.address": ("client", _STR),
    "http.client_ip": ("client", _STR),
    "net.sock.peer.addr": ("client", _STR),
    "network.peer.address": ("client", _STR),
    "user_agent.original": ("ua", _STR),
    "http.user_agent": ("ua", _STR),
    "http.request.body.size": ("req_bytes", _INT),
    "http.request_content_length": ("req_bytes", _INT),
    "http.response.body.size": ("resp_bytes", _INT),
    "http.response_content_length": ("resp_bytes", _INT),
    "http.request.header.x-request-id": ("request_id", _STR),
}
# what makes a non-server span a call all the same
_HTTP_MARKS = ("route", "path", "target")
_EXCEPTION_KINDS = (
    ("timeout", "timeout"),
    ("timedout", "timeout"),
    ("deadline", "timeout"),
    ("refused", "connect_failed"),
    ("connecterror", "connect_failed"),
    ("connectionerror", "connect_failed"),
    ("reset", "reset"),
    ("brokenpipe", "reset"),
    ("remoteprotocol", "bad_response"),
)


def _value(v: AnyValue, how: int) -> str | int | None:
    which = v.WhichOneof("value")
    if which is None:
        return None
    if how == _INT:
        if which == "int_value":
            return int(v.int_value)
        if which == "string_value":
            text = v.string_value
            return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None
        if which == "double_value":
            d = v.double_value
            return int(d) if math.isfinite(d) and abs(d) < 1e18 else None
        return None
    if which == "string_value":
        return v.string_value
    if which == "array_value":  # header attributes are arrays of strings
        values = v.array_value.values
        return values[0].string_value if values else None
    if which in ("int_value", "double_value", "bool_value"):
        return str(getattr(v, which))
    return None


def _fields(attributes: Iterable[KeyValue], out: dict[str, Any], consumer_key: str) -> None:
    attrs = _ATTRS
    for kv in attributes:
        key = kv.key
        spec = attrs.get(key)
        if spec is not None:
            name, how = spec
            if name in out:
                continue
            v = kv.value
            # the common case in one attribute read; anything else through `_value`
            value: str | int | None = v.string_value if how == _STR else v.int_value
            if not value:
                value = _value(v, how)
            if value is not None:
                out[name] = value
        elif key == consumer_key:
            v = kv.value
            value = v.string_value or _value(v, _STR)
            if value is not None:
                out["consumer"] = value


def _error_kind(events: Iterable[Any], status: int) -> str:
    for ev in events:
        if ev.name != "exception":
            continue
        for kv in ev.attributes:
            if kv.key == "exception.type":
                t = kv.value.string_value.lower().replace("_", "")
                for needle, kind in _EXCEPTION_KINDS:
                    if needle in t:
                        return kind
    if status in (401, 403):
        return "auth"
    if status == 429:
        return "rate_limited"
    return ""


@functools.lru_cache(maxsize=64)
def method_of(value: str) -> str:
    """An HTTP method as a call record has it: upper case letters, else ``OTHER`` (the
    semantic conventions' name for a method they do not know)."""
    return value.upper() if value.isascii() and value.isalpha() and len(value) <= 16 else "OTHER"


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clean(text: str, size: int) -> str:
    """`text` cut to `size` characters, without control characters: values that become
    aggregate keys and text columns (consumer, service) may hold no NUL (PostgreSQL text
    cannot) and no newline (the call blocks' sets are newline-separated)."""
    text = text[:size]
    return text if text.isprintable() else _CONTROL.sub("", text)


def _path_of(f: dict[str, Any]) -> str:
    path = f.get("path")
    if path is None:
        target = f.get("target")
        if target is None:
            url = f.get("url", "")
            rest = url.split("://", 1)[1] if "://" in url else url
            target = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
        path = target
    path = str(path).split("?", 1)[0]
    return path if path.startswith("/") else "/" + path


def _route_of(f: dict[str, Any], routes: ExternalRoutes, method: str) -> tuple[str, str, str]:
    """(route, template, path) of a span's fields: the declared route matching the span's
    ``http.route`` (few distinct values: cached), else the one matching its path, else the
    catch-all with ``http.route`` or the normalized path as template."""
    host = str(f.get("host", ""))[:253]
    declared = f.get("route")
    if declared:
        declared = str(declared)[:MAX_PATH]
    has_path = "path" in f or "target" in f or "url" in f
    path = _path_of(f) if has_path else str(declared or "/")
    if declared:
        name, template = routes.match_cached(host, method, str(declared))
        if name != CATCH_ALL:
            return name, template, path
        if has_path:
            name, template = routes.match(host, method, path)
            if name != CATCH_ALL:
                return name, template, path
        return CATCH_ALL, normalize_path(str(declared)), path
    name, template = routes.match(host, method, path)
    return name, template, path


@dataclass(slots=True)
class Converted:
    """What a trace export turned into: calls, plus counts for the response and stats."""

    records: list[CallRecord] = field(default_factory=list)
    spans: int = 0  # every span in the request
    rejected: int = 0  # spans that claim to be calls but cannot be one
    sample: str = ""  # why the first rejected one was rejected
    missing_service: int = 0  # resources without service.name


def _service_of(attributes: Iterable[KeyValue]) -> str:
    """A resource's ``service.name``, cleaned ("" when it has none)."""
    for kv in attributes:
        if kv.key == "service.name":
            return clean(kv.value.string_value, 200)
    return ""


def calls_of_traces(
    req: ExportTraceServiceRequest, routes: ExternalRoutes, consumer_key: str
) -> Converted:
    """The calls among `req`'s spans: server spans, and any span with an HTTP route or
    path. Other spans (internal, client) are accepted and not calls."""
    out = Converted()
    records = out.records
    for rs in req.resource_spans:
        service = _service_of(rs.resource.attributes)
        if not service:
            out.missing_service += 1
            service = "unknown_service"
        for ss in rs.scope_spans:
            for span in ss.spans:
                out.spans += 1
                # values of _STR attributes are str, of _INT ones int (see `_fields`)
                f: dict[str, Any] = {}
                _fields(span.attributes, f, consumer_key)
                if span.kind != _SERVER and not ("route" in f or "path" in f or "target" in f):
                    continue
                start, end = span.start_time_unix_nano, span.end_time_unix_nano
                t = start / 1e9
                if not _EARLIEST < t < _LATEST or end < start:
                    out.rejected += 1
                    if not out.sample:
                        out.sample = (
                            f"span {span.span_id.hex()}: start {start} / end {end} "
                            "are not a Unix time in nanoseconds with end ≥ start"
                        )
                    continue
                failed = span.status.code == _STATUS_ERROR
                status = f.get("status", 0)
                if not 100 <= status <= 999:
                    status = 500 if failed else 200
                method = method_of(f.get("method", "GET"))
                route, template, path = _route_of(f, routes, method)
                ms = (end - start) / 1e6
                req_bytes = f.get("req_bytes", 0)
                resp_bytes = f.get("resp_bytes", 0)
                request_id = f.get("request_id")
                records.append(
                    CallRecord(
                        t,
                        route,
                        clean(f.get("consumer", ""), 200),
                        method,
                        template,
                        path[:2048],
                        status,
                        req_bytes if req_bytes > 0 else 0,
                        resp_bytes if resp_bytes > 0 else 0,
                        service,
                        0.0,
                        ms,
                        ms,
                        _error_kind(span.events, status) if failed or status >= 400 else "",
                        f.get("client", "")[:64],
                        request_id[:128] if request_id else span.span_id.hex(),
                        span.trace_id.hex(),
                        service,
                        f.get("ua", "")[:512],
                    )
                )
    return out


@dataclass(slots=True)
class ConvertedLogs:
    records: list[CallRecord] = field(default_factory=list)
    logs: int = 0
    rejected: int = 0
    sample: str = ""
    missing_service: int = 0


def calls_of_logs(
    req: ExportLogsServiceRequest, routes: ExternalRoutes, consumer_key: str
) -> ConvertedLogs:
    """Log records that describe an HTTP call (an access log shipped as OTLP: a status
    code plus a path or route attribute) become calls; other log records are accepted
    and not calls. Latency comes from ``http.server.request.duration`` (seconds) when
    present."""
    out = ConvertedLogs()
    for rl in req.resource_logs:
        service = _service_of(rl.resource.attributes)
        if not service:
            out.missing_service += 1
            service = "unknown_service"
        for sl in rl.scope_logs:
            for lr in sl.log_records:
                out.logs += 1
                f: dict[str, Any] = {}
                _fields(lr.attributes, f, consumer_key)
                if "status" not in f or not any(m in f for m in (*_HTTP_MARKS, "url")):
                    continue
                ns = lr.time_unix_nano or lr.observed_time_unix_nano
                t = ns / 1e9
                status = f["status"]
                if not _EARLIEST < t < _LATEST or not 100 <= status <= 999:
                    out.rejected += 1
                    if not out.sample:
                        out.sample = f"log record at {ns}: time or status {status} out of range"
                    continue
                seconds = 0.0
                for kv in lr.attributes:
                    if kv.key == "http.server.request.duration":
                        seconds = kv.value.double_value or float(kv.value.int_value)
                ms = max(0.0, min(seconds * 1000, 1e11))
                method = method_of(f.get("method", "GET"))
                route, template, path = _route_of(f, routes, method)
                span_id = lr.span_id.hex()
                out.records.append(
                    CallRecord(
                        t,
                        route,
                        clean(f.get("consumer", ""), 200),
                        method,
                        template,
                        path[:2048],
                        status,
                        max(0, int(f.get("req_bytes", 0) or 0)),
                        max(0, int(f.get("resp_bytes", 0) or 0)),
                        service,
                        0.0,
                        ms,
                        ms,
                        _error_kind((), status),
                        str(f.get("client", ""))[:64],
                        str(f.get("request_id") or span_id or f"log-{ns}")[:128],
                        lr.trace_id.hex(),
                        service,
                        str(f.get("ua", ""))[:512],
                    )
                )
    return out


@dataclass(slots=True)
class SourceStats:
    """What one source (``otlp/traces``, ``otlp/logs``) sent: counts, and a sample of the
    last malformed input with the reason."""

    requests: int = 0
    items: int = 0  # spans or log records received
    calls: int = 0  # of which became call records
    rejected: int = 0  # items refused one by one (partial success)
    malformed: int = 0  # requests refused whole (400, 413, 415)
    missing_service: int = 0  # resources without service.name
    last_error: str = ""
    last_sample: str = ""
    last_error_at: float = 0.0

    def bad(self, reason: str, sample: str, at: float) -> None:
        self.malformed += 1
        self.last_error = reason[:500]
        self.last_sample = sample[:MAX_SAMPLE]
        self.last_error_at = at


def status_body(kind: str, code: int, message: str, http_code: str) -> tuple[bytes, str]:
    """An error answer per OTLP/HTTP: a ``google.rpc.Status`` (code, message) in the
    request's encoding. The JSON form also carries the console's usual ``error`` object."""
    if kind == PROTOBUF:
        text = message.encode()
        return (
            b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text,
            PROTOBUF,
        )
    doc = {
        "code": code,
        "message": message,
        "error": {"code": http_code, "message": message, "details": None},
    }
    return json.dumps(doc).encode(), JSON


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


@dataclass(slots=True)
class Export:
    """One export request, decoded: its calls and counts, and its idempotency key."""

    key: str
    records: list[CallRecord]
    items: int  # spans or log records in the request
    rejected: int
    sample: str  # why the first refused item was refused
    missing_service: int


def convert(
    signal: str,
    raw: bytes,
    *,
    encoding: str,
    kind: str,
    routes: ExternalRoutes,
    consumer_key: str,
    max_body: int,
) -> Export:
    """Bytes of an export request (as sent) to its calls; raises `TooLarge`, `Unsupported`
    or `Malformed`. CPU only: the receiver runs big bodies in a worker thread."""
    if len(raw) > max_body:
        raise TooLarge(f"the body is over {max_body} bytes")
    body = gunzip(raw, encoding)
    key = batch_key(signal, body)
    if signal == "traces":
        t = calls_of_traces(decode_traces(body, kind), routes, consumer_key)
        return Export(key, t.records, t.spans, t.rejected, t.sample, t.missing_service)
    lg = calls_of_logs(decode_logs(body, kind), routes, consumer_key)
    return Export(key, lg.records, lg.logs, lg.rejected, lg.sample, lg.missing_service)


def sample_of(body: bytes) -> str:
    """A printable excerpt of an offending body (its start, bytes shown escaped)."""
    head = body[:MAX_SAMPLE]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = binascii.hexlify(head[: MAX_SAMPLE // 2]).decode()
        return f"hex:{text}"
    return text.replace("\n", " ")


__all__ = [
    "JSON",
    "PROTOBUF",
    "Converted",
    "ConvertedLogs",
    "Export",
    "Malformed",
    "SourceStats",
    "TooLarge",
    "Unsupported",
    "batch_key",
    "calls_of_logs",
    "calls_of_traces",
    "convert",
    "decode_logs",
    "decode_traces",
    "encode_response",
    "gunzip",
    "media_type",
    "sample_of",
    "status_body",
]
