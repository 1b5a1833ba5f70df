"""One module per integration, each describing its source as an `Integration`: a pure
parser ``parse(body, headers, options) -> list[SignalDraft]``, its test event, its dedup
rule and its intake URL.

Everything else is derived from `INTEGRATIONS`: the adapter table, the list of types the
console offers and the samples it sends. Adapters do no I/O; they raise `Rejected` with a
reason the sender can act on. To add a source, add a module with an ``INTEGRATION`` and
list it in ``_MODULES`` (and in the `IntegrationType` literal of the config, which a test
keeps equal to this registry).
"""

from __future__ import annotations

from hypercare.feedback.adapters import (
    alertmanager,
    cloudwatch,
    datadog,
    generic,
    grafana,
    pagerduty,
    sentry,
)
from hypercare.feedback.adapters.base import Adapter, Integration

_MODULES = (alertmanager, grafana, sentry, pagerduty, datadog, cloudwatch, generic)

INTEGRATIONS: dict[str, Integration] = {m.INTEGRATION.type: m.INTEGRATION for m in _MODULES}
INTEGRATION_TYPES: tuple[str, ...] = tuple(INTEGRATIONS)
ADAPTERS: dict[str, Adapter] = {kind: i.parse for kind, i in INTEGRATIONS.items()}

__all__ = ["ADAPTERS", "INTEGRATIONS", "INTEGRATION_TYPES", "Adapter", "Integration"]
