"""Call detail as one block per ingest batch: building a block, reading it, and the
summaries that let a search skip the blocks that cannot match.

A row per call with an index per searchable column made each stored call cost several
B-tree inserts: about half of the collector's time. A batch's calls are instead written
as one JSON array of rows (the `CallRecord` fields in order, then the capture object when
the route's policy kept one), compressed as one zstd frame (level 1: about a quarter of the
JSON's size for ~0.4 µs per call; blocks stored as plain JSON before still read), in one
`telemetry_segments` row, with:

- the block's time range (`first_ts`, `last_ts`), so a time-ranged search reads only the
  blocks that overlap it, newest first;
- its distinct routes, consumers, statuses and error kinds as ``\\n``-separated sets, so a
  filtered search decodes only blocks that hold a match;
- per route, the statuses and error kinds of that route's calls (`telemetry_segment_routes`,
  indexed by route and time), so a search of one route finds the blocks with its matches
  without reading the blocks of other routes;
- two lookup keys per call, request id and trace id, in `telemetry_call_keys` (see
  callkeys.py), each pointing at the call's place: ``ref = batch_id << 16 | pos << 1 | kind``.

A call's id in the API is ``batch_id << 15 | pos``: unique, and ordered like the batches.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import msgspec
import orjson
import zstandard

from hypercare.gateway.records import CallRecord
from hypercare.telemetry.callkeys import keys_of
from hypercare.telemetry.models import SIZES

FIELDS = CallRecord._fields
F_TIME, F_ROUTE, F_CONSUMER, F_STATUS, F_ERROR, F_REQUEST_ID, F_TRACE_ID = (
    FIELDS.index(f)
    for f in ("time", "route", "consumer", "status", "error", "request_id", "trace_id")
)
F_CAPTURE = len(FIELDS)  # a row with a capture has one more value
_LIMITS = [(i, SIZES[f]) for i, f in enumerate(FIELDS) if f in SIZES]

REQUEST, TRACE = 0, 1  # the kind bit of a ref
POS_BITS = 15  # positions in a batch: wire.MAX_RECORDS (20,000) < 2**15


def ref(batch_id: int, pos: int, kind: int) -> int:
    return (batch_id << (POS_BITS + 1)) | (pos << 1) | kind


def place(reference: int) -> tuple[int, int, int]:
    """(batch id, position, kind) of a ref."""
    return reference >> (POS_BITS + 1), (reference >> 1) & ((1 << POS_BITS) - 1), reference & 1


def call_id(batch_id: int, pos: int) -> int:
    return (batch_id << POS_BITS) | pos


def tag(value: Any) -> str:
    """How one value appears in a block's summary set (see `tagset`)."""
    return f"\n{value}\n"


def tagset(values: Iterable[Any]) -> str:
    """A set of values as text that a LIKE on ``%\\nvalue\\n%`` searches exactly: a block
    is skipped only when its set lacks the value (a value holding a newline can at worst
    make a block read that then has no match, never hide one)."""
    return "\n" + "".join(f"{v}\n" for v in sorted(set(values)))


class RoutePart(NamedTuple):
    route: str
    statuses: str
    errors: str


class Block(NamedTuple):
    first_ts: float
    last_ts: float
    routes: str
    consumers: str
    statuses: str
    errors: str
    calls: bytes
    request_keys: list[int]
    trace_keys: list[int]
    route_parts: list[RoutePart]


_ENCODER = msgspec.json.Encoder()
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"  # how every zstd frame starts; JSON starts with "["
_codecs = threading.local()  # zstd contexts are not thread-safe: one pair per thread


def _codec() -> tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]:
    pair: tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor] | None = getattr(
        _codecs, "pair", None
    )
    if pair is None:
        pair = _codecs.pair = (zstandard.ZstdCompressor(level=1), zstandard.ZstdDecompressor())
    return pair


def _dumps(rows: Sequence[Any]) -> bytes:
    """The rows as one JSON array (a `CallRecord` as the array of its fields), compressed."""
    try:
        text = _ENCODER.encode(rows)
    except (msgspec.EncodeError, UnicodeEncodeError, TypeError):
        # a lone surrogate (the stdlib decoder lets it through): escaped
        text = json.dumps(rows).encode()
    return _codec()[0].compress(text)


def loads(calls: bytes) -> list[list[Any]]:
    """The rows of a block (a zstd frame of JSON, or plain JSON as stored before)."""
    if calls[:4] == ZSTD_MAGIC:
        calls = _codec()[1].decompress(calls)
    try:
        rows: list[list[Any]] = orjson.loads(calls)
    except orjson.JSONDecodeError:  # written by the stdlib fallback above
        rows = json.loads(calls)
    return rows


def build(
    records: Sequence[CallRecord],
    captures: dict[int, dict[str, Any]],
    columns: Sequence[Sequence[Any]] | None = None,
) -> Block:
    """The block of a batch's records (not empty), built column by column with C-level
    zip and map: strings cut to their sizes, a capture appended to its call's row. The
    records are written as they are when nothing needs cutting and nothing was captured.
    `columns` are the records' columns (``list(zip(*records))``) when the caller has them."""
    cols: list[Sequence[Any]] = (
        list(columns) if columns is not None else list(zip(*records))  # noqa: B905 - uniform
    )
    cut = False
    for i, size in _LIMITS:
        if max(map(len, cols[i])) > size:
            cols[i] = [v[:size] for v in cols[i]]
            cut = True
    times = cols[F_TIME]
    rows: Sequence[Any] = records
    if cut or captures:
        table = list(zip(*cols))  # noqa: B905 - columns of equal length
        for i, capture in captures.items():
            table[i] = (*table[i], capture)
        rows = table
    # per route, from the distinct (route, value) pairs (C-level set of zip)
    statuses: dict[str, list[int]] = defaultdict(list)
    for route, status in set(zip(cols[F_ROUTE], cols[F_STATUS])):  # noqa: B905
        statuses[route].append(status)
    errors: dict[str, list[str]] = defaultdict(list)
    for route, error in set(zip(cols[F_ROUTE], cols[F_ERROR])):  # noqa: B905
        if error:
            errors[route].append(error)
    parts = [RoutePart(r, tagset(c), tagset(errors.get(r, ()))) for r, c in statuses.items()]
    return Block(
        first_ts=min(times),
        last_ts=max(times),
        routes=tagset(cols[F_ROUTE]),
        consumers=tagset(cols[F_CONSUMER]),
        statuses=tagset(cols[F_STATUS]),
        errors=tagset(e for e in set(cols[F_ERROR]) if e),
        calls=_dumps(rows),
        request_keys=keys_of(cols[F_REQUEST_ID], times),
        trace_keys=keys_of(cols[F_TRACE_ID], times),
        route_parts=parts,
    )


def key_rows(batch_id: int, block: Block) -> tuple[list[int], list[int]]:
    """The (key, ref) rows of a block's calls as two columns: request keys, then trace
    keys, each in call order."""
    n = len(block.request_keys)
    base = batch_id << (POS_BITS + 1)
    refs = list(range(base | REQUEST, base + 2 * n, 2))
    refs += range(base | TRACE, base + 2 * n, 2)
    return block.request_keys + block.trace_keys, refs


def record_of(row: Sequence[Any]) -> CallRecord:
    return CallRecord._make(row[:F_CAPTURE])


__all__ = [
    "Block",
    "RoutePart",
    "build",
    "call_id",
    "key_rows",
    "loads",
    "place",
    "record_of",
    "ref",
    "tag",
    "tagset",
]
