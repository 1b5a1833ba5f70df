"""Prometheus Alertmanager webhook (version 4, and the older version 3 shape).

Each alert in a notification group becomes one signal; the dedup key is the alert's
fingerprint, or a hash of its labels when the sender leaves the fingerprint out.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from hypercare.feedback.adapters.base import SUMMARY, TEST_DETAIL, Integration, now_iso, test_ref
from hypercare.feedback.config import IntegrationOptions
from hypercare.feedback.drafts import (
    Rejected,
    SignalDraft,
    need_object,
    opt_text,
    parse_json,
    parse_time,
    str_labels,
    text,
)

MAX_ALERTS = 1000


def labels_key(labels: Mapping[str, str]) -> str:
    """A stable key from a label set, used when no fingerprint is given."""
    canonical = json.dumps(dict(sorted(labels.items())), separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def alert_drafts(
    payload: dict[str, Any], *, source: str, what: str = "Alertmanager"
) -> list[SignalDraft]:
    """The alerts of an Alertmanager-shaped group (Grafana unified alerting sends the same)."""
    alerts = payload.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        raise Rejected(
            f"not an {what} notification: 'alerts' must be a non-empty list "
            "(point the receiver's webhook_configs url here)"
        )
    if len(alerts) > MAX_ALERTS:
        raise Rejected(f"too many alerts in one notification ({len(alerts)} > {MAX_ALERTS})")
    common = str_labels(payload.get("commonLabels"))
    drafts = []
    for i, raw in enumerate(alerts):
        alert = need_object(raw, f"alerts[{i}]")
        labels = str_labels(alert.get("labels")) or common
        if not labels:
            raise Rejected(f"alerts[{i}] has no labels: an alert needs at least 'alertname'")
        annotations = str_labels(alert.get("annotations"))
        status = alert.get("status", payload.get("status"))
        if status not in ("firing", "resolved"):
            raise Rejected(f"alerts[{i}].status must be 'firing' or 'resolved', got {status!r}")
        fingerprint = alert.get("fingerprint")
        key = fingerprint if isinstance(fingerprint, str) and fingerprint else labels_key(labels)
        name = labels.get("alertname", "alert")
        summary = annotations.get("summary") or annotations.get("message") or name
        body = annotations.get("description") or annotations.get("message") or ""
        occurred = parse_time(alert.get("endsAt")) if status == "resolved" else None
        drafts.append(
            SignalDraft(
                kind="system",
                source=source,
                summary=text(f"{name}: {summary}" if summary != name else name, 500),
                body=body,
                dedup_key=f"{source}:{key}",
                raw=alert,
                severity=opt_text(labels.get("severity") or annotations.get("severity"), 40),
                status=status,
                occurred_at=occurred or parse_time(alert.get("startsAt")),
                component=opt_text(labels.get("component") or labels.get("service"), 120),
                service=opt_text(labels.get("service") or labels.get("job"), 120),
                route=opt_text(labels.get("route") or labels.get("path"), 200),
                labels=labels,
            )
        )
    return drafts


def parse(
    body: bytes, headers: Mapping[str, str], options: IntegrationOptions
) -> list[SignalDraft]:
    payload = need_object(parse_json(body), "the Alertmanager notification")
    version = payload.get("version")
    if version is not None and str(version) not in ("3", "4"):
        raise Rejected(f"unsupported Alertmanager webhook version {version!r} (3 and 4 are)")
    return alert_drafts(payload, source="alertmanager")


def sample_alerts(kind: str) -> bytes:
    """A one-alert notification group as Alertmanager (and Grafana alerting) send it."""
    alert = {
        "status": "firing",
        "fingerprint": test_ref(),
        "labels": {"alertname": "HypercareTestAlert", "severity": "info", "test": "true"},
        "annotations": {"summary": SUMMARY.format(kind=kind), "description": TEST_DETAIL},
        "startsAt": now_iso(),
    }
    group = {"version": "4", "status": "firing", "receiver": "hypercare", "alerts": [alert]}
    return json.dumps(group).encode()


def sample(options: IntegrationOptions) -> tuple[bytes, dict[str, str]]:
    return sample_alerts("alertmanager"), {}


INTEGRATION = Integration(
    type="alertmanager",
    parse=parse,
    sample=sample,
    dedup="the alert's fingerprint, or a hash of its labels",
)
