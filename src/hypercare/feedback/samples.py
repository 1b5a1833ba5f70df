"""Test events: a sample payload per integration type, and how a test delivery is marked.

A test event goes through the real adapter and the intake path, so it proves that the
adapter reads the payload (the generic webhook's mapping included) and that the signal is
stored. It is kept as a signal labelled ``test: "true"``, attached to no issue and creating
none: it never reaches deduplication, correlation, SLA clocks or MTTx.

The console sends one with its "send test event" button (`sample`). An external sender
marks a real delivery as a test with the ``X-Hypercare-Test: true`` header (`is_test`),
which also proves the URL and the token.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from hypercare.feedback.config import FieldMapping, IntegrationOptions
from hypercare.feedback.drafts import Rejected, SignalDraft

TEST_HEADER = "x-hypercare-test"
TEST_LABEL = "test"
_TRUE = ("1", "true", "yes")
SUMMARY = "Test event from the Hypercare console ({kind}); safe to ignore"


def is_test(headers: Mapping[str, str]) -> bool:
    """Whether a delivery asks to be treated as a test (``X-Hypercare-Test: true``)."""
    return headers.get(TEST_HEADER, "").strip().lower() in _TRUE


def mark(drafts: Sequence[SignalDraft]) -> list[SignalDraft]:
    """The drafts as test signals: labelled, attached to no issue, opening none, and with
    their own dedup key so they never join the group of a real alert."""
    return [
        replace(
            d,
            labels={**d.labels, TEST_LABEL: "true"},
            issue_id=None,
            create_issue=False,
            dedup_key=f"test:{d.dedup_key}"[:400],
        )
        for d in drafts
    ]


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _ref() -> str:
    return f"hypercare-test-{uuid.uuid4().hex[:12]}"


def _alerts(kind: str) -> dict[str, Any]:
    return {
        "version": "4",
        "status": "firing",
        "receiver": "hypercare",
        "alerts": [
            {
                "status": "firing",
                "fingerprint": _ref(),
                "labels": {"alertname": "HypercareTestAlert", "severity": "info", "test": "true"},
                "annotations": {
                    "summary": SUMMARY.format(kind=kind),
                    "description": "Sent by the 'send test event' button.",
                },
                "startsAt": _now(),
            }
        ],
    }


def _pagerduty() -> dict[str, Any]:
    return {
        "routing_key": "test",
        "event_action": "trigger",
        "dedup_key": _ref(),
        "payload": {
            "summary": SUMMARY.format(kind="pagerduty"),
            "source": "hypercare-console",
            "severity": "info",
            "timestamp": _now(),
        },
    }


def _sentry() -> dict[str, Any]:
    # the shape of an integration-platform issue alert (event_alert.triggered)
    ref = _ref()
    return {
        "action": "triggered",
        "data": {
            "event": {
                "event_id": uuid.uuid4().hex,
                "issue_id": ref,
                "title": SUMMARY.format(kind="sentry"),
                "culprit": "hypercare.console",
                "level": "info",
                "datetime": _now(),
                "tags": [["test", "true"]],
            },
            "triggered_rule": "Hypercare test",
        },
    }


def _datadog() -> dict[str, Any]:
    # Datadog's default webhook payload with its variables filled in
    return {
        "title": "[Triggered] " + SUMMARY.format(kind="datadog"),
        "body": "Sent by the 'send test event' button.",
        "alert_id": _ref(),
        "alert_transition": "Triggered",
        "alert_type": "info",
        "event_type": "query_alert_monitor",
        "date": int(datetime.now(UTC).timestamp() * 1000),
        "tags": "test:true,source:hypercare",
    }


def _cloudwatch() -> dict[str, Any]:
    # an SNS Notification whose Message is a CloudWatch alarm
    now = _now()
    alarm = {
        "AlarmName": "HypercareTestAlarm",
        "AlarmDescription": SUMMARY.format(kind="cloudwatch"),
        "AWSAccountId": "000000000000",
        "NewStateValue": "ALARM",
        "NewStateReason": SUMMARY.format(kind="cloudwatch"),
        "StateChangeTime": now,
        "Region": "test",
        "OldStateValue": "OK",
        "Trigger": {"MetricName": "HypercareTest", "Namespace": "Hypercare/Test"},
    }
    return {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": "arn:aws:sns:test:000000000000:hypercare-test",
        "Subject": "ALARM: HypercareTestAlarm",
        "Message": json.dumps(alarm),
        "Timestamp": now,
        "SignatureVersion": "1",
        "Signature": "",
    }


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


def _webhook(mapping: FieldMapping | None) -> Any:
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
        "body": "Sent by the 'send test event' button.",
        "severity": "info",
        "status": "firing",
        "dedup_key": _ref(),
        "occurred_at": _now(),
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


def sample(kind: str, options: IntegrationOptions) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a test event for an integration of type `kind`.

    A Sentry integration with a client secret gets a valid ``Sentry-Hook-Signature``; a
    CloudWatch integration that verifies SNS signatures cannot be tested from the console
    (only AWS can sign), which is said in the `Rejected` reason."""
    headers = {TEST_HEADER: "true", "content-type": "application/json"}
    payload: Any
    if kind in ("alertmanager", "grafana"):
        payload = _alerts(kind)
    elif kind == "pagerduty":
        payload = _pagerduty()
    elif kind == "sentry":
        payload = _sentry()
        headers["sentry-hook-resource"] = "event_alert"
    elif kind == "datadog":
        payload = _datadog()
    elif kind == "cloudwatch":
        if options.sns_certificate:
            raise Rejected(
                "this CloudWatch integration verifies SNS signatures, which only AWS can make, "
                "so the console cannot send it a test event; publish a message to its SNS "
                "topic instead",
                status=409,
            )
        payload = _cloudwatch()
        headers["x-amz-sns-message-type"] = "Notification"
    elif kind == "webhook":
        payload = _webhook(options.mapping)
    else:
        raise Rejected(f"there is no sample event for {kind} integrations", status=409)
    body = json.dumps(payload).encode()
    if kind == "sentry" and options.secret:
        signature = hmac.new(options.secret.encode(), body, hashlib.sha256).hexdigest()
        headers["sentry-hook-signature"] = signature
    return body, headers


KINDS = ("alertmanager", "grafana", "pagerduty", "sentry", "datadog", "cloudwatch", "webhook")
