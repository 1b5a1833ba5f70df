"""Gateway access logs as call records: one pure adapter per format, and the registry.

    adapter = FORMATS["nginx-json"]
    records = parse_lines(lines, adapter, match, rejects, source="nginx-json:/var/log/x.log")

`FORMATS` is the single list of formats: `hypercare tail --format` offers the ones written to
files (``TAIL_FORMATS``), ``POST /api/v1/ingest/{format}`` accepts every one. Entries that do
not match their format are counted per source in `Rejects` with a sample of the line and the
reason, never dropped silently.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import orjson

from hypercare.gateway.records import CallRecord
from hypercare.telemetry.accesslog import apisix, envoy, kong, nginx, traefik
from hypercare.telemetry.accesslog.base import (
    Adapter,
    Match,
    Rejects,
    Unparsable,
    sample_of,
    sane,
    unrouted,
)

FORMATS: dict[str, Adapter] = {
    a.name: a
    for a in (
        Adapter("nginx-json", "nginx (JSON log_format)", nginx.parse, True, nginx.parse_line),
        Adapter("envoy-json", "Envoy (JSON access log)", envoy.parse, tail=True),
        Adapter("traefik-json", "Traefik (JSON access log)", traefik.parse, tail=True),
        Adapter("kong", "Kong (http-log plugin)", kong.parse, tail=False),
        Adapter("apisix", "Apache APISIX (http-logger plugin)", apisix.parse, tail=False),
    )
}
TAIL_FORMATS = tuple(name for name, a in FORMATS.items() if a.tail)

# a longer line is not an access log entry
MAX_LINE_BYTES = 64 * 1024
_EARLIEST, _LATEST = 1e9, 4102444800.0  # as `sane` checks (durations are ≥ 0 by parsing)


def parse_entry(
    raw: bytes | str, doc: Any, adapter: Adapter, match: Match, rejects: Rejects, source: str
) -> CallRecord | None:
    """One decoded entry as a record, or None (counted in `rejects`)."""
    try:
        return sane(adapter.parse(doc, match))
    except Unparsable as exc:
        rejects.add(source, raw, f"{adapter.name}: {exc}", time.time())
    except (TypeError, AttributeError, OverflowError, ValueError) as exc:
        rejects.add(source, raw, f"{adapter.name}: {type(exc).__name__}", time.time())
    return None


def parse_lines(
    lines: Iterable[bytes],
    adapter: Adapter,
    match: Match,
    rejects: Rejects,
    source: str,
) -> list[CallRecord]:
    """Records of the complete lines `lines` (blank lines are skipped, not counted)."""
    out: list[CallRecord] = []
    parse = adapter.parse
    fast = adapter.parse_line
    for line in lines:
        if len(line) > MAX_LINE_BYTES:
            rejects.add(source, line, f"line over {MAX_LINE_BYTES} bytes", time.time())
            continue
        if fast is not None:
            try:
                record = fast(line, match)
            except (Unparsable, ValueError, TypeError):
                record = None
            if record is not None and _EARLIEST < record.time < _LATEST:
                out.append(record)
                continue
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            if line.strip():
                rejects.add(source, line, "not JSON", time.time())
            continue
        try:
            out.append(sane(parse(doc, match)))
        except Unparsable as exc:
            rejects.add(source, line, f"{adapter.name}: {exc}", time.time())
        except (TypeError, AttributeError, OverflowError, ValueError) as exc:
            rejects.add(source, line, f"{adapter.name}: {type(exc).__name__}", time.time())
    return out


def parse_body(
    body: bytes, adapter: Adapter, match: Match, rejects: Rejects, source: str
) -> list[CallRecord]:
    """Records of a pushed body: one JSON object, a JSON array of them, or NDJSON."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return parse_lines(body.splitlines(), adapter, match, rejects, source)
    entries = doc if isinstance(doc, list) else [doc]
    out = []
    for entry in entries:
        raw = orjson.dumps(entry) if len(entries) > 1 else body
        record = parse_entry(raw, entry, adapter, match, rejects, source)
        if record is not None:
            out.append(record)
    return out


__all__ = [
    "FORMATS",
    "TAIL_FORMATS",
    "Adapter",
    "Match",
    "Rejects",
    "Unparsable",
    "parse_body",
    "parse_lines",
    "sample_of",
    "unrouted",
]
