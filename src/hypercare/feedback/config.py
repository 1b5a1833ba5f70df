"""The ``feedback:`` configuration section: integrations, widget keys, severity mapping."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from hypercare.configtypes import Duration, StrictModel

# The integration types, checked by pydantic in the config file and the API. The modules of
# `hypercare.feedback.adapters` define them (that package needs this module, so it cannot be
# imported here); a test keeps this literal equal to `adapters.INTEGRATION_TYPES`.
IntegrationType = Literal[
    "alertmanager", "grafana", "sentry", "pagerduty", "datadog", "cloudwatch", "webhook"
]

# Severity hints each source sends, lower-cased, mapped to a suggested priority. The "*"
# entry is the fallback for every source; a source's own table wins over it.
DEFAULT_PRIORITIES: dict[str, dict[str, str]] = {
    "*": {
        "critical": "P1",
        "fatal": "P1",
        "page": "P1",
        "high": "P2",
        "error": "P2",
        "alarm": "P2",
        "major": "P2",
        "warning": "P3",
        "warn": "P3",
        "medium": "P3",
        "minor": "P3",
        "info": "P4",
        "low": "P4",
        "debug": "P4",
    },
    "ticket": {"critical": "P1", "high": "P2", "medium": "P3", "low": "P4"},
    "feature": {"*": "P4"},
}


class FieldMapping(StrictModel):
    """Where the generic JSON webhook finds each signal field: dotted paths into the body
    (``alert.title``, ``items.0.name``). ``summary`` is required; the rest are optional."""

    items: str | None = Field(
        default=None, description="path of a list; each element becomes one signal"
    )
    summary: str
    body: str | None = None
    severity: str | None = None
    status: str | None = None
    resolved_values: list[str] = Field(default_factory=lambda: ["resolved", "ok", "closed"])
    dedup_key: str | None = None
    occurred_at: str | None = None
    component: str | None = None
    service: str | None = None
    route: str | None = None
    request_id: str | None = None
    trace_id: str | None = None


class IntegrationOptions(StrictModel):
    """How an adapter reads one integration's payloads."""

    # Sentry: the client secret used for Sentry-Hook-Signature (HMAC-SHA256 of the body)
    secret: str | None = None
    # CloudWatch/SNS: answer SubscriptionConfirmation by fetching SubscribeURL
    sns_auto_confirm: bool = False
    # CloudWatch/SNS: PEM certificate whose key signs the messages; unset = not verified
    sns_certificate: str | None = None
    # generic webhook: how to read the body
    mapping: FieldMapping | None = None

    @field_validator("sns_certificate")
    @classmethod
    def _pem(cls, value: str | None) -> str | None:
        if not value:
            return None
        from cryptography import x509  # loaded only when a certificate is configured

        try:
            x509.load_pem_x509_certificate(value.encode())
        except ValueError:
            raise ValueError(
                "sns_certificate is not a PEM certificate (paste the -----BEGIN CERTIFICATE----- "
                "block of the SNS signing certificate)"
            ) from None
        return value


class IntegrationSettings(IntegrationOptions):
    """An integration declared in the file (others are created through the API)."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{1,62}$")
    type: IntegrationType
    name: str = ""
    token: str = Field(min_length=16, description="bearer token; use ${ENV} to keep it out")

    @model_validator(mode="after")
    def _mapping_for_webhook(self) -> IntegrationSettings:
        if self.type == "webhook" and self.mapping is None:
            raise ValueError("a 'webhook' integration needs a 'mapping' (at least 'summary')")
        return self


class WidgetKey(StrictModel):
    """A public key a launched web app embeds in the widget; not a secret."""

    key: str = Field(pattern=r"^wk_[A-Za-z0-9_-]{8,64}$")
    name: str = ""
    origins: list[str] = Field(
        min_length=1, description="exact origins allowed, e.g. https://app.example.com"
    )


class FeedbackConfig(StrictModel):
    public_url: str | None = Field(
        default=None, description="base URL of the console as the senders reach it"
    )
    priorities: dict[str, dict[str, str]] = Field(default_factory=lambda: DEFAULT_PRIORITIES)
    integrations: list[IntegrationSettings] = Field(default_factory=list)
    widget_keys: list[WidgetKey] = Field(default_factory=list)
    widget_rate_limit: int = Field(default=10, ge=1, description="widget posts per IP per window")
    widget_rate_window: Duration = timedelta(minutes=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> FeedbackConfig:
        ids = [i.id for i in self.integrations]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"integration ids must be unique; repeated: {', '.join(dupes)}")
        return self
