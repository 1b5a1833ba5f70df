"""One pure adapter per source: ``parse(body, headers, options) -> list[SignalDraft]``.

Adapters do no I/O. They raise `Rejected` with a reason the sender can act on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from hypercare.feedback.adapters import (
    alertmanager,
    cloudwatch,
    datadog,
    generic,
    grafana,
    pagerduty,
    sentry,
)
from hypercare.feedback.config import IntegrationOptions
from hypercare.feedback.drafts import SignalDraft

Adapter = Callable[[bytes, Mapping[str, str], IntegrationOptions], list[SignalDraft]]

ADAPTERS: dict[str, Adapter] = {
    "alertmanager": alertmanager.parse,
    "grafana": grafana.parse,
    "sentry": sentry.parse,
    "pagerduty": pagerduty.parse,
    "datadog": datadog.parse,
    "cloudwatch": cloudwatch.parse,
    "webhook": generic.parse,
}
