"""OTLP/HTTP decoding: OpenTelemetry spans and log records become call records.

Pure functions over bytes and plain data (the HTTP side is `otlp_views.py`): a request body
is decompressed (`gunzip`, bounded), decoded with the official ``opentelemetry-proto``
schema (its attribute lists read as maps: `_reading_files`) from protobuf or from OTLP's
JSON encoding (`decode_traces`, `decode_logs`), and
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
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import add, attrgetter, eq, getitem, itemgetter, le, methodcaller, sub, truediv
from typing import Any, cast

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

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
    return f"otlp-{signal[0]}-{hashlib.sha256(body).hexdigest()[:32]}"


# --- the reading schema ------------------------------------------------------------------

# The official messages make a Python object of every attribute, of its value and of its
# key when they are read (~0.4 µs per attribute: most of the cost of a span). Requests are
# parsed instead with a copy of the official schema (`_reading_files`: the files of
# ``opentelemetry-proto``, taken from its descriptors at import, in a package of their own)
# in which only the repeated ``KeyValue attributes`` fields are declared as
# ``map<string, bytes>``: a ``KeyValue`` is encoded exactly as a map entry (key = 1,
# value = 2), so the protobuf runtime parses the attributes into a table looked up by key
# in C, each value the bytes of its ``AnyValue``, decoded only when read. Every other field
# is the official one (name, number, type, UTF-8 check of strings), so a request is refused
# as the official messages would refuse it, but for what an attribute value holds when it
# is not read. Duplicate keys, which OTLP forbids, keep the last value.
_PACKAGE = "hypercare.otlp.reading"  # the official packages are renamed under this one
_OFFICIAL = "opentelemetry"  # the first part of the official packages and file names
_KEY_VALUE = ".opentelemetry.proto.common.v1.KeyValue"
_ATTRIBUTES_FIELD = "attributes"
_ATTRIBUTES_ENTRY = "AttributesEntry"  # the name protoc gives the entry of a map field


def _official_files() -> list[descriptor_pb2.FileDescriptorProto]:
    """The files of the official export requests and the files they import, each after
    its imports."""
    out: dict[str, descriptor_pb2.FileDescriptorProto] = {}

    def add(file: Any) -> None:
        if file.name in out:
            return
        for dependency in file.dependencies:
            add(dependency)
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        out[file.name] = proto

    add(ExportTraceServiceRequest.DESCRIPTOR.file)
    add(ExportLogsServiceRequest.DESCRIPTOR.file)
    return list(out.values())


def _renamed(name: str) -> str:
    """A package, or a type's full name (with its leading dot), moved under `_PACKAGE`."""
    if name.startswith("." + _OFFICIAL):
        return f".{_PACKAGE}{name}"
    return f"{_PACKAGE}.{name}" if name.startswith(_OFFICIAL) else name


def _rewrite(message: descriptor_pb2.DescriptorProto, full_name: str) -> None:
    """`message` (full name `full_name`, renamed) and its nested messages with their type
    references renamed, and each repeated ``KeyValue attributes`` field declared as
    ``map<string, bytes>`` (same name, number and JSON name)."""
    fd = descriptor_pb2.FieldDescriptorProto
    for nested in message.nested_type:
        _rewrite(nested, f"{full_name}.{nested.name}")
    for f in message.field:
        if f.name == _ATTRIBUTES_FIELD and f.type_name == _KEY_VALUE:
            if f.label != fd.LABEL_REPEATED:
                raise RuntimeError(f"{full_name}.{f.name} is not a list of KeyValue")
            entry = message.nested_type.add(name=_ATTRIBUTES_ENTRY)
            entry.options.map_entry = True
            for name, number, kind in (("key", 1, fd.TYPE_STRING), ("value", 2, fd.TYPE_BYTES)):
                entry.field.add(
                    name=name, number=number, type=kind, label=fd.LABEL_OPTIONAL, json_name=name
                )
            f.type_name = f"{full_name}.{_ATTRIBUTES_ENTRY}"
        elif f.type_name:
            f.type_name = _renamed(f.type_name)


def _reading_files() -> list[descriptor_pb2.FileDescriptorProto]:
    """The official files with their packages renamed under `_PACKAGE` and the attribute
    lists as maps (see above); nothing else changed."""
    folder = _PACKAGE.replace(".", "/")
    files = _official_files()
    for file in files:
        file.name = f"{folder}/{file.name}"
        file.dependency[:] = [f"{folder}/{d}" for d in file.dependency]
        file.package = _renamed(file.package)
        for message in file.message_type:
            _rewrite(message, f".{file.package}.{message.name}")
        for service in file.service:
            for method in service.method:
                method.input_type = _renamed(method.input_type)
                method.output_type = _renamed(method.output_type)
    return files


def _reading_messages() -> dict[str, Any]:
    """The export request classes of `_reading_files`, in a descriptor pool of their own,
    by official full name."""
    pool = descriptor_pool.DescriptorPool()
    for file in _reading_files():
        pool.Add(file)
    return {
        request.DESCRIPTOR.full_name: message_factory.GetMessageClass(
            pool.FindMessageTypeByName(_renamed(request.DESCRIPTOR.full_name))
        )
        for request in (ExportTraceServiceRequest, ExportLogsServiceRequest)
    }


_READING = _reading_messages()
_TRACES = _READING[ExportTraceServiceRequest.DESCRIPTOR.full_name]
_LOGS = _READING[ExportLogsServiceRequest.DESCRIPTOR.full_name]


@dataclass(frozen=True, slots=True)
class Decoded:
    """An export request parsed with the reading messages (see `_reading_files`), and the bytes
    it was parsed from (attribute keys absent from them are not looked up)."""

    message: Any
    body: bytes


def _read(message: Any, body: bytes, what: str) -> Decoded:
    try:
        return Decoded(message.FromString(body), body)
    except (DecodeError, RecursionError) as exc:
        raise Malformed(f"the body is not an OTLP protobuf {what} export: {exc}") from None


def decode_traces(body: bytes, kind: str) -> Decoded:
    """An export request of spans; OTLP/JSON is read with the official messages first.
    `Malformed` when it is not one."""
    if kind == JSON:
        req = ExportTraceServiceRequest()
        _from_json(body, req)
        body = req.SerializeToString()
    return _read(_TRACES, body, "trace")


def decode_logs(body: bytes, kind: str) -> Decoded:
    """An export request of log records (see `decode_traces`)."""
    if kind == JSON:
        req = ExportLogsServiceRequest()
        _from_json(body, req)
        body = req.SerializeToString()
    return _read(_LOGS, body, "logs")


# --- attribute values ----------------------------------------------------------------------

_STR, _INT, _SECONDS = 0, 1, 2  # how a value is read: text, an integer, seconds (float)
_STRING_VALUE, _INT_VALUE, _DOUBLE_VALUE = 0x0A, 0x18, 0x21  # AnyValue's first byte for each


def _read_varint(raw: bytes, at: int) -> int | None:
    """The varint that starts at `at` and ends `raw`, else None."""
    value = shift = 0
    for i in range(at, min(len(raw), at + 10)):
        b = raw[i]
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value if i == len(raw) - 1 else None
    return None


def _value(v: AnyValue, how: int) -> str | int | float | None:
    which = v.WhichOneof("value")
    if which is None:
        return None
    if how == _SECONDS:
        return v.double_value or float(v.int_value)
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


def _decode(raw: bytes | None, how: int) -> str | int | float | None:
    """The value of an attribute from the bytes of its ``AnyValue`` (None: absent, or no
    value). The usual encodings (one short string, one integer, one double) are read
    directly; anything else through the official message."""
    if not raw:
        return None
    n = len(raw)
    head = raw[0]
    try:
        if head == _STRING_VALUE and n >= 2 and raw[1] == n - 2 and how == _STR:
            return raw[2:].decode()
        if head == _INT_VALUE and how != _STR:
            value = _read_varint(raw, 1)
            if value is not None:
                value &= (1 << 64) - 1  # as protobuf reads a varint: 64 bits of it
                value -= (value >> 63) << 64  # int64: two's complement
                return float(value) if how == _SECONDS else value
        if head == _DOUBLE_VALUE and n == 9 and how == _SECONDS:
            seconds: float = struct.unpack_from("<d", raw, 1)[0]
            return seconds
        return _value(AnyValue.FromString(raw), how)
    except (UnicodeDecodeError, DecodeError) as exc:
        raise Malformed(
            f"the body is not an OTLP export request: an attribute value: {exc}"
        ) from None


_Fix = Callable[[Any], Any]


def _plain_texts(raws: list[bytes | None]) -> list[str] | None:
    """The strings of a column of ``AnyValue`` encodings when each is one string field
    shorter than 128 bytes (the usual case; what `_decode` reads first), decoded with
    C-level maps; None when any is not (or is not UTF-8: `_decode` then says so)."""
    if None in raws:
        return None
    column = cast(list[bytes], raws)
    try:
        heads = bytes(map(itemgetter(0), column))
        sizes = bytes(map(itemgetter(1), column))
    except IndexError:  # an empty or one-byte value
        return None
    if heads.count(_STRING_VALUE) != len(heads) or max(sizes) >= 0x80:
        return None
    if not all(map(eq, map(len, column), map(add, sizes, repeat(2)))):
        return None
    try:
        cut = cast(Iterator[bytes], map(getitem, column, repeat(slice(2, None))))
        return list(map(bytes.decode, cut))
    except UnicodeDecodeError:
        return None


class _Columns:
    """The attribute tables of a group of spans (or log records), read column by column:
    for each item, the value of the first of some keys it holds. Each distinct value is
    decoded once; the rest are C-level table lookups.

    `body` is the request's bytes: a key that does not occur in them at all is in no
    table, so its column is not looked up item by item (one substring search per request
    and key instead, shared through `present`)."""

    __slots__ = ("_present", "attrs", "body")

    def __init__(self, attrs: list[Any], body: bytes, present: dict[str, bool]) -> None:
        self.attrs = attrs
        self.body = body
        self._present = present  # key -> whether it occurs in body (shared per request)

    def _occurs(self, key: str) -> bool:
        found = self._present.get(key)
        if found is None:
            found = self._present[key] = key.encode() in self.body
        return found

    def get(self, keys: Sequence[str], how: int, fix: _Fix | None = None) -> list[Any]:
        """Per item, the value of the first of `keys` it holds (None when none), through
        `fix` when not None."""
        attrs = self.attrs
        col: list[Any] | None = None
        for key in keys:
            if not self._occurs(key):
                continue
            # the table's item lookup (a C slot, cheaper than a `get` call); a table without
            # the key gets it with an empty value, which reads as absent (these parsed
            # messages live only as long as the conversion)
            raws = list(map(getitem, attrs, repeat(key)))
            distinct = set(raws)
            values: list[Any] | None = None
            if how == _STR and 2 * len(distinct) > len(raws):
                # mostly distinct values (paths): decoded in C when all are plain strings
                values = _plain_texts(raws)
                if values is not None and fix is not None:
                    values = _path_column(values) if fix is _path else list(map(fix, values))
            if values is None:
                table: dict[bytes | None, Any] = {}
                for raw in distinct:
                    value = _decode(raw, how)
                    table[raw] = value if value is None or fix is None else fix(value)
                values = list(map(table.__getitem__, raws))
            if col is None:
                col = values
            else:
                col = [a if a is not None else b for a, b in zip(col, values, strict=True)]
            if None not in col:
                break
        return col if col is not None else [None] * len(attrs)

    def fill(self, col: list[Any], keys: Sequence[str], fix: _Fix) -> list[Any]:
        """`col` with the values of `keys` where it has None."""
        more = self.get(keys, _STR, fix)
        return [a if a is not None else b for a, b in zip(col, more, strict=True)]

    def select(self, keep: list[bool]) -> None:
        self.attrs = list(compress(self.attrs, keep))


def _or(col: list[Any], default: Any) -> list[Any]:
    """`col` with `default` for None."""
    if None not in col:
        return col
    if col.count(None) == len(col):
        return [default] * len(col)
    return [default if v is None else v for v in col]


def _select(keep: list[bool], *cols: list[Any]) -> list[list[Any]]:
    return [list(compress(c, keep)) for c in cols]


# attribute names per field, the current semantic convention first, old names after
_METHOD = ("http.request.method", "http.method")
_PATH = ("url.path",)
_TARGET = ("http.target",)
_URL = ("url.full", "http.url")
_ROUTE = ("http.route",)
_HOST = ("server.address", "http.host", "net.host.name")
_STATUS = ("http.response.status_code", "http.status_code")
_CLIENT = ("client.address", "http.client_ip", "net.sock.peer.addr", "network.peer.address")
_UA = ("user_agent.original", "http.user_agent")
_REQ_BYTES = ("http.request.body.size", "http.request_content_length")
_RESP_BYTES = ("http.response.body.size", "http.response_content_length")
_REQUEST_ID = ("http.request.header.x-request-id",)
_DURATION = ("http.server.request.duration",)

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


def _error_kind(events: Iterable[Any], status: int) -> str:
    for ev in events:
        if ev.name != "exception":
            continue
        t = _decode(ev.attributes.get("exception.type"), _STR)
        if isinstance(t, str):
            t = t.lower().replace("_", "")
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


def _path(text: str) -> str:
    """A path attribute without its query, starting with a slash."""
    path = text.split("?", 1)[0]
    return path if path.startswith("/") else "/" + path


def _path_column(texts: list[str]) -> list[str]:
    """`_path` of each, without a Python call each when none has a query or lacks the
    leading slash."""
    if "?" in "".join(texts) or not all(map(methodcaller("startswith", "/"), texts)):
        return list(map(_path, texts))
    return texts


def _url_path(url: str) -> str:
    """The path of a URL attribute (``url.full``)."""
    rest = url.split("://", 1)[1] if "://" in url else url
    return _path("/" + rest.split("/", 1)[1] if "/" in rest else "/")


def _cutter(size: int) -> _Fix:
    return lambda text: str(text)[:size]


_route_text = _cutter(MAX_PATH)
_host_text = _cutter(253)
_client_text = _cutter(64)
_ua_text = _cutter(512)


def _consumer_text(text: str) -> str:
    return clean(text, 200)


def _request_id_text(text: str) -> str | None:
    return text[:128] or None  # an empty one is no request id


def _size(value: int) -> int:
    return value if value > 0 else 0


@dataclass(slots=True)
class _Http:
    """The HTTP attributes of a group of spans or log records that route them, as columns."""

    declared: list[str | None]  # http.route, cut
    marked: list[str | None]  # url.path, else http.target (what makes any span a call)
    paths: list[str | None]  # those, else the path of url.full
    methods: list[str]

    @classmethod
    def of(cls, columns: _Columns) -> _Http:
        marked = columns.get(_PATH, _STR, _path)
        if None in marked:
            marked = columns.fill(marked, _TARGET, _path)
        paths = columns.fill(marked, _URL, _url_path) if None in marked else marked
        return cls(columns.get(_ROUTE, _STR, _route_text), marked, paths, [])

    def select(self, keep: list[bool]) -> None:
        self.declared, self.marked, self.paths = _select(
            keep, self.declared, self.marked, self.paths
        )


def _routes_of(
    http: _Http, hosts: list[str], routes: ExternalRoutes
) -> tuple[list[str], list[str], list[str]]:
    """(routes, templates, paths) of a group: the declared route matching a call's
    ``http.route`` (a table per distinct host, method and route), else the one matching
    its path, else the catch-all with ``http.route`` or the normalized path as template."""
    keys = list(zip(hosts, http.methods, http.declared, strict=True))
    table: dict[tuple[str, str, str | None], tuple[str, str] | None] = {}
    for key in set(keys):
        host, method, declared = key
        found = routes.match_cached(host, method, declared) if declared else None
        table[key] = found if found is not None and found[0] != CATCH_ALL else None
    matched: list[tuple[str, str] | None] = list(map(table.__getitem__, keys))
    # no path attribute: the declared route as the path, else "/"
    paths = cast(list[str], http.paths)
    if None in paths:
        paths = [
            p if p is not None else (d or "/")
            for p, d in zip(http.paths, http.declared, strict=True)
        ]
    if None in matched:
        matched = [
            m if m is not None else _route_slow(routes, h, me, d, p, has)
            for m, h, me, d, p, has in zip(
                matched, hosts, http.methods, http.declared, paths, http.paths, strict=True
            )
        ]
    if max(map(len, paths)) > MAX_PATH:
        paths = [p[:MAX_PATH] for p in paths]
    names: list[str] = list(map(itemgetter(0), cast(list[tuple[str, str]], matched)))
    templates: list[str] = list(map(itemgetter(1), cast(list[tuple[str, str]], matched)))
    return names, templates, paths


def _route_slow(
    routes: ExternalRoutes,
    host: str,
    method: str,
    declared: str | None,
    path: str,
    has_path: str | None,
) -> tuple[str, str]:
    if has_path is not None:
        name, template = routes.match(host, method, path)
        if name != CATCH_ALL or not declared:
            return name, template
    if declared:
        return CATCH_ALL, normalize_path(declared)
    return routes.match(host, method, path)


@dataclass(slots=True)
class Converted:
    """What a trace export turned into: calls, plus counts for the response and stats."""

    records: list[CallRecord] = field(default_factory=list)
    spans: int = 0  # every span in the request
    rejected: int = 0  # spans that claim to be calls but cannot be one
    sample: str = ""  # why the first rejected one was rejected
    missing_service: int = 0  # resources without service.name


def _service_of(attributes: Any) -> str:
    """A resource's ``service.name``, cleaned ("" when it has none)."""
    name = _decode(attributes.get("service.name"), _STR)
    return clean(name, 200) if isinstance(name, str) else ""


# spans converted together: columns of this many stay in the CPU's caches (measured: 64 to
# 128 took ~20 % less CPU than whole scopes of 2,000 spans on a loaded machine)
_CHUNK = 128
_new_record = tuple.__new__  # a CallRecord from an iterable of its fields, in C
_KIND = attrgetter("kind")
_START, _END = attrgetter("start_time_unix_nano"), attrgetter("end_time_unix_nano")
_ATTRS_OF = attrgetter("attributes")
_STATUS_CODE = attrgetter("status.code")
_TRACE_ID, _SPAN_ID = attrgetter("trace_id"), attrgetter("span_id")


def calls_of_traces(
    req: Decoded | ExportTraceServiceRequest, routes: ExternalRoutes, consumer_key: str
) -> Converted:
    """The calls among `req`'s spans: server spans, and any span with an HTTP route or
    path. Other spans (internal, client) are accepted and not calls. `req` comes from
    `decode_traces` (an official ``ExportTraceServiceRequest`` is read through its bytes).
    The spans of a scope are converted column by column, `_CHUNK` at a time."""
    if isinstance(req, ExportTraceServiceRequest):
        req = _read(_TRACES, req.SerializeToString(), "trace")
    out = Converted()
    present: dict[str, bool] = {}
    for rs in req.message.resource_spans:
        service = _service_of(rs.resource.attributes)
        if not service:
            out.missing_service += 1
            service = "unknown_service"
        for ss in rs.scope_spans:
            group = ss.spans
            out.spans += len(group)
            for at in range(0, len(group), _CHUNK):
                spans = group[at : at + _CHUNK]
                columns = _Columns(list(map(_ATTRS_OF, spans)), req.body, present)
                _calls_of_spans(spans, columns, service, routes, consumer_key, out)
    return out


def _calls_of_spans(
    spans: list[Any],
    columns: _Columns,
    service: str,
    routes: ExternalRoutes,
    consumer_key: str,
    out: Converted,
) -> None:
    http = _Http.of(columns)
    kinds = list(map(_KIND, spans))
    if kinds.count(_SERVER) != len(kinds):
        # other spans are calls when they have a route or a path
        keep = [
            k == _SERVER or d is not None or p is not None
            for k, d, p in zip(kinds, http.declared, http.marked, strict=True)
        ]
        (spans,) = _select(keep, spans)
        columns.select(keep)
        http.select(keep)
        if not spans:
            return
    starts, ends = list(map(_START, spans)), list(map(_END, spans))
    times = list(map(truediv, starts, repeat(1e9)))
    if not (min(times) > _EARLIEST and max(times) < _LATEST and all(map(le, starts, ends))):
        keep = [
            _EARLIEST < t < _LATEST and start <= end
            for t, start, end in zip(times, starts, ends, strict=True)
        ]
        bad = keep.index(False)
        out.rejected += keep.count(False)
        if not out.sample:
            out.sample = (
                f"span {spans[bad].span_id.hex()}: start {starts[bad]} / end {ends[bad]} "
                "are not a Unix time in nanoseconds with end ≥ start"
            )
        spans, starts, ends, times = _select(keep, spans, starts, ends, times)
        columns.select(keep)
        http.select(keep)
        if not spans:
            return
    failed = list(map(_STATUS_CODE, spans))
    statuses = columns.get(_STATUS, _INT)
    if None in statuses or min(statuses) < 100 or max(statuses) > 999:
        statuses = [
            s if s is not None and 100 <= s <= 999 else (500 if c == _STATUS_ERROR else 200)
            for s, c in zip(statuses, failed, strict=True)
        ]
    http.methods = _or(columns.get(_METHOD, _STR, method_of), "GET")
    hosts = _or(columns.get(_HOST, _STR, _host_text), "")
    names, templates, paths = _routes_of(http, hosts, routes)
    errors = [""] * len(spans)
    if max(statuses) >= 400 or _STATUS_ERROR in failed:
        for i, (status, code) in enumerate(zip(statuses, failed, strict=True)):
            if status >= 400 or code == _STATUS_ERROR:
                errors[i] = _error_kind(spans[i].events, status)
    request_ids = columns.get(_REQUEST_ID, _STR, _request_id_text)
    span_ids = map(bytes.hex, map(_SPAN_ID, spans))
    if request_ids.count(None) == len(request_ids):
        request_ids = list(span_ids)
    else:
        request_ids = [r if r is not None else s for r, s in zip(request_ids, span_ids)]  # noqa: B905
    ms = list(map(truediv, map(sub, ends, starts), repeat(1e6)))
    # the fields of CallRecord, in order
    fields = (
        times,
        names,
        _or(columns.get((consumer_key,), _STR, _consumer_text), ""),
        http.methods,
        templates,
        paths,
        statuses,
        _or(columns.get(_REQ_BYTES, _INT, _size), 0),
        _or(columns.get(_RESP_BYTES, _INT, _size), 0),
        repeat(service),
        repeat(0.0),
        ms,
        ms,
        errors,
        _or(columns.get(_CLIENT, _STR, _client_text), ""),
        request_ids,
        map(bytes.hex, map(_TRACE_ID, spans)),
        repeat(service),
        _or(columns.get(_UA, _STR, _ua_text), ""),
    )
    out.records.extend(map(_new_record, repeat(CallRecord), zip(*fields)))  # noqa: B905


@dataclass(slots=True)
class ConvertedLogs:
    records: list[CallRecord] = field(default_factory=list)
    logs: int = 0
    rejected: int = 0
    sample: str = ""
    missing_service: int = 0


def calls_of_logs(
    req: Decoded | ExportLogsServiceRequest, routes: ExternalRoutes, consumer_key: str
) -> ConvertedLogs:
    """Log records that describe an HTTP call (an access log shipped as OTLP: a status
    code plus a path or route attribute) become calls; other log records are accepted
    and not calls. Latency comes from ``http.server.request.duration`` (seconds) when
    present. `req` comes from `decode_logs` (or is an official request)."""
    if isinstance(req, ExportLogsServiceRequest):
        req = _read(_LOGS, req.SerializeToString(), "logs")
    out = ConvertedLogs()
    present: dict[str, bool] = {}
    for rl in req.message.resource_logs:
        service = _service_of(rl.resource.attributes)
        if not service:
            out.missing_service += 1
            service = "unknown_service"
        for sl in rl.scope_logs:
            group = sl.log_records
            out.logs += len(group)
            for at in range(0, len(group), _CHUNK):
                logs = group[at : at + _CHUNK]
                columns = _Columns(list(map(_ATTRS_OF, logs)), req.body, present)
                _calls_of_logs(logs, columns, service, routes, consumer_key, out)
    return out


def _calls_of_logs(
    logs: list[Any],
    columns: _Columns,
    service: str,
    routes: ExternalRoutes,
    consumer_key: str,
    out: ConvertedLogs,
) -> None:
    http = _Http.of(columns)
    statuses = columns.get(_STATUS, _INT)
    keep = [
        s is not None and (d is not None or p is not None)
        for s, d, p in zip(statuses, http.declared, http.paths, strict=True)
    ]
    logs, statuses = _select(keep, logs, statuses)
    columns.select(keep)
    http.select(keep)
    good = []
    for lr, status in zip(logs, statuses, strict=True):
        ns = lr.time_unix_nano or lr.observed_time_unix_nano
        if _EARLIEST < ns / 1e9 < _LATEST and 100 <= status <= 999:
            good.append(True)
            continue
        good.append(False)
        out.rejected += 1
        if not out.sample:
            out.sample = f"log record at {ns}: time or status {status} out of range"
    logs, statuses = _select(good, logs, statuses)
    columns.select(good)
    http.select(good)
    if not logs:
        return
    http.methods = _or(columns.get(_METHOD, _STR, method_of), "GET")
    hosts = _or(columns.get(_HOST, _STR, _host_text), "")
    names, templates, paths = _routes_of(http, hosts, routes)
    fields = zip(
        logs,
        names,
        _or(columns.get((consumer_key,), _STR, _consumer_text), ""),
        http.methods,
        templates,
        paths,
        statuses,
        _or(columns.get(_REQ_BYTES, _INT, _size), 0),
        _or(columns.get(_RESP_BYTES, _INT, _size), 0),
        _or(columns.get(_DURATION, _SECONDS), 0.0),
        _or(columns.get(_CLIENT, _STR, _client_text), ""),
        columns.get(_REQUEST_ID, _STR, _request_id_text),
        _or(columns.get(_UA, _STR, _ua_text), ""),
        strict=True,
    )
    for lr, name, consumer, method, template, path, status, rq, rs, sec, client, rid, ua in fields:
        ns = lr.time_unix_nano or lr.observed_time_unix_nano
        ms = max(0.0, min(sec * 1000, 1e11))
        span_id = lr.span_id.hex()
        out.records.append(
            CallRecord(
                ns / 1e9,
                name,
                consumer,
                method,
                template,
                path,
                status,
                rq,
                rs,
                service,
                0.0,
                ms,
                ms,
                _error_kind((), status),
                client,
                (rid or span_id or f"log-{ns}")[:128],
                lr.trace_id.hex(),
                service,
                ua,
            )
        )


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
    "Decoded",
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
