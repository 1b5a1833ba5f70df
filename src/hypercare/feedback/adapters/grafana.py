"""Grafana alerting webhooks: unified alerting (version "1", Alertmanager-shaped) and the
legacy dashboard-alert notification (ruleId, state, evalMatches)."""

from __future__ import annotations

from collections.abc import Mapping

from hypercare.feedback.adapters.alertmanager import alert_drafts, sample_alerts
from hypercare.feedback.adapters.base import Integration
from hypercare.feedback.config import IntegrationOptions
from hypercare.feedback.drafts import (
    Rejected,
    SignalDraft,
    need_object,
    parse_json,
    str_labels,
    text,
)

_LEGACY_STATES = {"alerting": "firing", "ok": "resolved", "no_data": "firing"}


def parse(
    body: bytes, headers: Mapping[str, str], options: IntegrationOptions
) -> list[SignalDraft]:
    payload = need_object(parse_json(body), "the Grafana notification")
    if "alerts" in payload:
        return alert_drafts(payload, source="grafana", what="Grafana alerting")
    if "ruleId" in payload or "ruleName" in payload:
        state = payload.get("state")
        status = _LEGACY_STATES.get(str(state))
        if status is None:
            raise Rejected(
                f"legacy Grafana state {state!r} is not a signal "
                f"(expected one of {', '.join(_LEGACY_STATES)})"
            )
        rule = payload.get("ruleId", payload.get("ruleName"))
        tags = str_labels(payload.get("tags"))
        matches = payload.get("evalMatches")
        if isinstance(matches, list) and matches and isinstance(matches[0], dict):
            tags = {**str_labels(matches[0].get("tags")), **tags}
        return [
            SignalDraft(
                kind="system",
                source="grafana",
                summary=text(
                    payload.get("title") or payload.get("ruleName") or "Grafana alert", 500
                ),
                body=text(payload.get("message")),
                dedup_key=f"grafana:rule:{text(rule, 100)}",
                raw=payload,
                severity="warning" if state == "no_data" else None,
                status="firing" if status == "firing" else "resolved",
                labels=tags,
            )
        ]
    raise Rejected(
        "not a Grafana notification: expected unified alerting ('alerts' list) "
        "or a legacy alert ('ruleId', 'state')"
    )


def sample(options: IntegrationOptions) -> tuple[bytes, dict[str, str]]:
    return sample_alerts("grafana"), {}


INTEGRATION = Integration(
    type="grafana",
    parse=parse,
    sample=sample,
    dedup="the alert's fingerprint, or a hash of its labels (legacy alerts: the rule id)",
)
