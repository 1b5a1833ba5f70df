"""Generic JSON webhook read through a declared field mapping (dotted paths)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from hypercare.feedback.config import FieldMapping, IntegrationOptions
from hypercare.feedback.drafts import (
    Rejected,
    SignalDraft,
    SignalStatus,
    opt_text,
    parse_json,
    parse_time,
    text,
)

_MISSING = object()
MAX_ITEMS = 1000


def lookup(data: Any, path: str) -> Any:
    """Follow ``a.b.0.c`` through objects and lists; `_MISSING` when a step is absent."""
    current = data
    for step in path.split("."):
        if isinstance(current, dict) and step in current:
            current = current[step]
        elif isinstance(current, list) and step.isdigit() and int(step) < len(current):
            current = current[int(step)]
        else:
            return _MISSING
    return current


def _get(item: Any, path: str | None) -> Any:
    if path is None:
        return None
    found = lookup(item, path)
    return None if found is _MISSING else found


def _draft(item: Any, m: FieldMapping, where: str) -> SignalDraft:
    summary = lookup(item, m.summary)
    if summary is _MISSING or summary in (None, ""):
        raise Rejected(f"{where}: the mapped summary field '{m.summary}' is missing or empty")
    status_value = _get(item, m.status)
    status: SignalStatus | None = None
    if status_value is not None:
        status = "resolved" if str(status_value).lower() in m.resolved_values else "firing"
    key = _get(item, m.dedup_key)
    if key is None:
        key = hashlib.sha256(text(summary).encode()).hexdigest()[:16]
    request_id = _get(item, m.request_id)
    return SignalDraft(
        kind="system",
        source="webhook",
        summary=text(summary, 500),
        body=text(_get(item, m.body)),
        dedup_key=f"webhook:{text(key, 300)}",
        raw=item,
        severity=opt_text(_get(item, m.severity), 40),
        status=status,
        occurred_at=parse_time(_get(item, m.occurred_at)),
        component=opt_text(_get(item, m.component), 120),
        service=opt_text(_get(item, m.service), 120),
        route=opt_text(_get(item, m.route), 200),
        request_ids=(text(request_id, 100),) if request_id else (),
        trace_id=opt_text(_get(item, m.trace_id), 64),
    )


def parse(
    body: bytes, headers: Mapping[str, str], options: IntegrationOptions
) -> list[SignalDraft]:
    mapping = options.mapping
    if mapping is None:
        raise Rejected("this webhook integration has no field mapping configured", status=409)
    data = parse_json(body)
    if mapping.items is None:
        return [_draft(data, mapping, "body")]
    items = lookup(data, mapping.items)
    if not isinstance(items, list) or not items:
        raise Rejected(f"the mapped items path '{mapping.items}' is not a non-empty list")
    if len(items) > MAX_ITEMS:
        raise Rejected(f"too many items ({len(items)} > {MAX_ITEMS})")
    return [_draft(item, mapping, f"{mapping.items}.{i}") for i, item in enumerate(items)]
