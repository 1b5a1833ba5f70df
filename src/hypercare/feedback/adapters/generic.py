"""Generic JSON webhook read through a declared field mapping (dotted paths)."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping
from typing import Any

from hypercare.feedback.adapters.base import SUMMARY, TEST_DETAIL, Integration, now_iso, test_ref
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


def _put(data: dict[str, Any], path: str, value: Any) -> None:
    """Set `value` at the dotted `path`, creating objects (and lists for numeric steps)."""
    steps = path.split(".")
    current: Any = data
    for step, following in itertools.pairwise(steps):
        child: Any = [] if following.isdigit() else {}
        if isinstance(current, list):
            index = int(step)
            while len(current) <= index:
                current.append(None)
            if not isinstance(current[index], dict | list):
                current[index] = child
            current = current[index]
        else:
            if not isinstance(current.get(step), dict | list):
                current[step] = child
            current = current[step]
    last = steps[-1]
    if isinstance(current, list):
        index = int(last)
        while len(current) <= index:
            current.append(None)
        current[index] = value
    else:
        current[last] = value


def _sample_body(mapping: FieldMapping | None) -> Any:
    """A body the generic webhook's `mapping` reads: each mapped field at its path."""
    if mapping is None:
        raise Rejected(
            "this webhook integration has no field mapping: add one (PATCH "
            "/api/v1/integrations/{id}) before sending a test event",
            status=409,
        )
    item: dict[str, Any] = {}
    values = {
        "summary": SUMMARY.format(kind="webhook"),
        "body": TEST_DETAIL,
        "severity": "info",
        "status": "firing",
        "dedup_key": test_ref(),
        "occurred_at": now_iso(),
        "component": None,
        "service": "hypercare-console",
        "route": None,
        "request_id": None,
        "trace_id": None,
    }
    for name, value in values.items():
        path = getattr(mapping, name)
        if path and value is not None:
            _put(item, path, value)
    if mapping.items is None:
        return item
    body: dict[str, Any] = {}
    if mapping.items.split(".")[0].isdigit():
        raise Rejected(f"the mapped items path '{mapping.items}' cannot start with an index")
    _put(body, mapping.items, [item])
    return body


def sample(options: IntegrationOptions) -> tuple[bytes, dict[str, str]]:
    """A body the integration's field mapping reads: each mapped field at its path."""
    return json.dumps(_sample_body(options.mapping)).encode(), {}


INTEGRATION = Integration(
    type="webhook",
    parse=parse,
    sample=sample,
    dedup="the mapped dedup_key field (prefixed webhook:), else a hash of the summary",
    needs_mapping=True,
)
