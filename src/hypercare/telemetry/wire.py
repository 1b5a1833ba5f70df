"""The ingest wire format shared by the shipper (encode) and the collector (decode).

One batch is a JSON object::

    {"v": 1, "batch": "<unique key, 8-64 chars>", "sent_at": <unix s>,
     "dropped_total": <records this node ever dropped>, "spool_bytes": <its spool size>,
     "records": [[<CallRecord fields in order>], ...],
     "captures": [[<record index>, [[name, value]...], [[name, value]...],
                   "<request body, base64>", "<response body, base64>",
                   {"query": "<query string>", "request_truncated": <bool>,
                    "response_truncated": <bool>, "redacted": <bool>}], ...]}

The sixth element of a capture is optional (batches from older nodes have five).

A node that reads access logs (`hypercare tail`) also reports the lines it could not read,
per source, as its running totals: ``"unparsed": [["<source>", <total>, "<sample line>",
"<reason>"], ...]`` (optional; at most 256 sources, samples cut to 512 characters).

Records are positional arrays (the field order of `CallRecord`), which keeps batches
compact and decoding cheap. The batch key makes re-sending a batch idempotent.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from operator import itemgetter
from typing import Any, NamedTuple, get_type_hints

import msgspec
import orjson

from hypercare.errors import InvalidInput
from hypercare.gateway.records import CallRecord
from hypercare.telemetry.capture import CallCapture

MAX_RECORDS = 20000
_FIELDS = CallRecord._fields
_NUM = (int, float)
# expected type per field, in order; floats accept ints
_HINTS = get_type_hints(CallRecord)
_TYPES: tuple[type | tuple[type, ...], ...] = tuple(
    _NUM if _HINTS[f] is float else _HINTS[f] for f in _FIELDS
)
_REQUIRED = len(_FIELDS) - len(CallRecord._field_defaults)
_MAX_QUERY = 65536
_FLAGS = ("request_truncated", "response_truncated", "redacted")
_BATCH_KEY = re.compile(r"^[A-Za-z0-9_.\-]{8,64}$")


MAX_UNPARSED_SOURCES = 256
_SAMPLE = 512

# one source's lines that did not match its format: (source, total, sample line, reason)
Unparsed = tuple[str, int, str, str]


class Batch(NamedTuple):
    key: str
    sent_at: float
    dropped_total: int
    spool_bytes: int
    records: list[CallRecord]
    captures: dict[int, CallCapture]
    unparsed: list[Unparsed] = []


def encode_batch(
    key: str,
    records: list[CallRecord],
    captures: dict[int, CallCapture] | None = None,
    *,
    sent_at: float,
    dropped_total: int = 0,
    spool_bytes: int = 0,
    unparsed: list[Unparsed] | None = None,
) -> bytes:
    caps = [
        [
            i,
            [list(h) for h in c.request_headers],
            [list(h) for h in c.response_headers],
            base64.b64encode(c.request_body).decode(),
            base64.b64encode(c.response_body).decode(),
            {
                "query": c.query,
                "request_truncated": c.request_truncated,
                "response_truncated": c.response_truncated,
                "redacted": c.redacted,
            },
        ]
        for i, c in (captures or {}).items()
    ]
    doc = {
        "v": 1,
        "batch": key,
        "sent_at": sent_at,
        "dropped_total": dropped_total,
        "spool_bytes": spool_bytes,
        "records": records,
        "captures": caps,
    }
    if unparsed:
        doc["unparsed"] = unparsed
    try:
        # orjson writes the records (tuples, via `default`) without per-field Python work:
        # about a tenth of the stdlib encoder's time per record, on the gateway worker's loop
        return orjson.dumps(doc, default=tuple)
    except (orjson.JSONEncodeError, TypeError):
        # what orjson refuses (a lone surrogate, an int beyond 64 bits) the stdlib still
        # writes; a value the decoder cannot accept is rejected by the console as before
        return json.dumps(doc, separators=(",", ":")).encode()


def _bad(message: str, **details: Any) -> InvalidInput:
    return InvalidInput(message, details=details or None)


_TIME, _GATEWAY_MS, _UPSTREAM_MS, _TOTAL_MS = (
    itemgetter(_FIELDS.index(f)) for f in ("time", "gateway_ms", "upstream_ms", "total_ms")
)


# a record's time must be a plausible Unix time (2001 to 2100): a NaN or a far-future time
# would keep its minute open forever
_EARLIEST, _LATEST = 1e9, 4102444800.0


def _sane(r: CallRecord, index: int) -> CallRecord:
    t = r.time
    if not _EARLIEST < t < _LATEST:
        raise _bad(f"records[{index}] time {t!r} is not a Unix time in seconds", index=index)
    for name in ("total_ms", "upstream_ms", "gateway_ms"):
        v = getattr(r, name)
        if not 0 <= v < 1e12:  # also false for NaN
            raise _bad(f"records[{index}] {name} {v!r} must be a finite duration ≥ 0", index=index)
    return r


def _record(row: Any, index: int) -> CallRecord:
    if not isinstance(row, list) or not _REQUIRED <= len(row) <= len(_FIELDS):
        raise _bad(
            f"records[{index}] must be an array of {_REQUIRED} to {len(_FIELDS)} values "
            f"in the order {', '.join(_FIELDS)}",
            index=index,
        )
    for pos, value in enumerate(row):
        expected = _TYPES[pos]
        if not isinstance(value, expected) or isinstance(value, bool):
            raise _bad(
                f"records[{index}][{pos}] ({_FIELDS[pos]}) has the wrong type "
                f"{type(value).__name__}",
                index=index,
                field=_FIELDS[pos],
            )
    return _sane(CallRecord(*row), index)


def _headers(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list) or not all(
        isinstance(h, list) and len(h) == 2 and all(isinstance(x, str) for x in h) for h in value
    ):
        raise _bad(f"{where} must be an array of [name, value] string pairs")
    return tuple((h[0], h[1]) for h in value)


def _body(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise _bad(f"{where} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _bad(f"{where} is not valid base64") from None


def _extra(value: Any, where: str) -> tuple[str, bool, bool, bool]:
    if not isinstance(value, dict):
        raise _bad(f"{where} must be an object")
    query = value.get("query", "")
    flags = tuple(value.get(f, False) for f in _FLAGS)
    if not isinstance(query, str) or len(query) > _MAX_QUERY:
        raise _bad(f'{where}["query"] must be a string of at most {_MAX_QUERY} characters')
    if not all(isinstance(f, bool) for f in flags):
        raise _bad(f"{where}: {', '.join(_FLAGS)} must be booleans")
    return query, flags[0], flags[1], flags[2]


def _parse(body: bytes) -> Any:
    """The JSON document. What orjson refuses but the stdlib reads (lone surrogates, NaN)
    is read by the stdlib; the records are then checked one by one."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: nested deeper than orjson's limit of 1024 (the stdlib recurses)
        raise _bad(f"the batch is not valid JSON: {exc}") from None


class _Wire(msgspec.Struct):
    """A batch as our shipper writes it: decoded and type-checked in one C-level pass,
    records straight into `CallRecord`s (ints where floats go are taken; bools, floats
    where ints go, wrong lengths and strings where numbers go are not)."""

    v: int
    batch: str
    records: list[CallRecord]
    sent_at: float = 0.0
    dropped_total: int = 0
    spool_bytes: int = 0
    captures: list[Any] = msgspec.field(default_factory=list)
    unparsed: list[tuple[str, int, str, str]] = msgspec.field(default_factory=list)


_WIRE = msgspec.json.Decoder(_Wire)


def _exact(body: bytes) -> _Wire | None:
    """The batch when it decodes as exactly what our shipper writes and every number is
    sane, else None (the careful path then says what is wrong, or accepts what is merely
    unusual: NaN in a field, a lone surrogate, an int beyond 64 bits, a float count)."""
    try:
        doc = _WIRE.decode(body)
    except (msgspec.DecodeError, RecursionError):  # also every msgspec.ValidationError
        return None  # RecursionError: `captures` nested very deep; the careful path says so
    records = doc.records
    if doc.v != 1 or not _BATCH_KEY.match(doc.batch) or len(records) > MAX_RECORDS:
        return None
    if min(doc.sent_at, doc.dropped_total, doc.spool_bytes) < 0:
        return None
    if records:
        times = list(map(_TIME, records))
        durations = [*map(_GATEWAY_MS, records), *map(_UPSTREAM_MS, records)]
        durations += map(_TOTAL_MS, records)
        if not (
            min(times) > _EARLIEST
            and max(times) < _LATEST
            and min(durations) >= 0
            and max(durations) < 1e12
        ):
            return None
    return doc


def decode_batch(body: bytes) -> Batch:
    """Parse and check a batch; `InvalidInput` says exactly what is wrong."""
    wire = _exact(body)
    if wire is not None:
        return _batch(
            wire.batch,
            wire.sent_at,
            wire.dropped_total,
            wire.spool_bytes,
            wire.records,
            wire.captures,
            wire.unparsed,
        )
    doc = _parse(body)
    if not isinstance(doc, dict) or doc.get("v") != 1:
        raise _bad('the batch must be a JSON object with "v": 1 (see docs/api.md)')
    key = doc.get("batch")
    if not isinstance(key, str) or not _BATCH_KEY.match(key):
        raise _bad('"batch" must be a unique key of 8-64 letters, digits, "_", "-" or "."')
    rows = doc.get("records")
    if not isinstance(rows, list):
        raise _bad('"records" must be an array')
    if len(rows) > MAX_RECORDS:
        raise _bad(f"at most {MAX_RECORDS} records per batch (got {len(rows)}); send smaller")
    numbers = []
    for name in ("sent_at", "dropped_total", "spool_bytes"):
        v = doc.get(name, 0)
        if not isinstance(v, int | float) or isinstance(v, bool) or v < 0:
            raise _bad(f'"{name}" must be a non-negative number')
        numbers.append(v)
    records = [_record(row, i) for i, row in enumerate(rows)]
    sent_at, dropped_total, spool_bytes = numbers
    return _batch(
        key,
        sent_at,
        dropped_total,
        spool_bytes,
        records,
        doc.get("captures", []),
        doc.get("unparsed", []),
    )


def _batch(
    key: str,
    sent_at: float,
    dropped_total: float,
    spool_bytes: float,
    records: list[CallRecord],
    caps: Any,
    unparsed: Any = (),
) -> Batch:
    """The batch, with its captures and unparsed-line reports checked."""
    captures: dict[int, CallCapture] = {}
    if not isinstance(caps, list):
        raise _bad('"captures" must be an array')
    for n, cap in enumerate(caps):
        where = f"captures[{n}]"
        if not isinstance(cap, list) or len(cap) not in (5, 6):
            raise _bad(
                f"{where} must be [index, request_headers, response_headers, b64, b64, extra]"
            )
        i = cap[0]
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < len(records):
            raise _bad(f"{where}[0] must be the index of a record in this batch")
        query, req_cut, resp_cut, redacted = _extra(cap[5] if len(cap) == 6 else {}, f"{where}[5]")
        captures[i] = CallCapture(
            _headers(cap[1], f"{where}[1]"),
            _headers(cap[2], f"{where}[2]"),
            _body(cap[3], f"{where}[3]"),
            _body(cap[4], f"{where}[4]"),
            query,
            req_cut,
            resp_cut,
            redacted,
        )
    return Batch(
        key,
        float(sent_at),
        int(dropped_total),
        int(spool_bytes),
        records,
        captures,
        _unparsed(unparsed),
    )


def _unparsed(value: Any) -> list[Unparsed]:
    where = '"unparsed"'
    if not isinstance(value, list | tuple) or len(value) > MAX_UNPARSED_SOURCES:
        raise _bad(f"{where} must be an array of at most {MAX_UNPARSED_SOURCES} entries")
    out: list[Unparsed] = []
    for n, item in enumerate(value):
        if (
            not isinstance(item, list | tuple)
            or len(item) != 4
            or not isinstance(item[0], str)
            or not isinstance(item[1], int)
            or isinstance(item[1], bool)
            or item[1] < 0
            or not isinstance(item[2], str)
            or not isinstance(item[3], str)
        ):
            raise _bad(f'{where}[{n}] must be ["source", total >= 0, "sample line", "reason"]')
        out.append((item[0][:300], item[1], item[2][:_SAMPLE], item[3][:200]))
    return out
