"""The ``response:`` section of the configuration file: where notifications go.

::

    response:
      base_url: https://hypercare.example.com   # links in messages; default: the console
      channels:
        - name: ops-hook
          type: webhook
          url: http://127.0.0.1:9999/hook
      rules:
        - match: {priority: [P1]}
          notify: [ops-hook]

Targets written here by the operator are used as written (loopback included). Names that
rules refer to are checked by `reference_errors`, which `hypercare.config` reports with the
file and line of the dangling name.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, model_validator

from hypercare.configtypes import Duration, StrictModel

ChannelType = Literal["webhook", "slack", "teams", "email", "pagerduty", "opsgenie"]
CHANNEL_TYPES: tuple[str, ...] = ("webhook", "slack", "teams", "email", "pagerduty", "opsgenie")
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$"

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
OPSGENIE_ALERTS_URL = "https://api.opsgenie.com/v2/alerts"

# timeline kinds that can notify; `rules.match.events` narrows a rule to some of them
EventKind = Literal["created", "priority", "status", "sla", "escalation", "acknowledged"]
EVENT_KINDS: tuple[str, ...] = (
    "created",
    "priority",
    "status",
    "sla",
    "escalation",
    "acknowledged",
)


class ChannelConfig(StrictModel):
    """One destination. Which settings apply depends on `type`:

    - webhook / slack / teams: `url` (webhook also `secret`, the HMAC key);
    - pagerduty: `routing_key` (integration key), `url` to override the Events v2 endpoint;
    - opsgenie: `api_key`, `url` to override the alerts endpoint;
    - email: `smtp_host`, `smtp_port`, `smtp_tls`, `username`, `password`, `sender`, `to`.
    """

    name: str = Field(pattern=_NAME)
    type: ChannelType
    url: str | None = Field(default=None, max_length=2000)
    secret: str | None = Field(default=None, min_length=16, max_length=200)
    routing_key: str | None = Field(default=None, max_length=200)
    api_key: str | None = Field(default=None, max_length=200)
    smtp_host: str | None = Field(default=None, max_length=255)
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    smtp_tls: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = Field(default=None, max_length=200)
    password: str | None = Field(default=None, max_length=200)
    sender: str | None = Field(default=None, max_length=300)
    to: list[str] = Field(default_factory=list, max_length=100)
    timeout: Duration = timedelta(seconds=10)

    @model_validator(mode="after")
    def _settings(self) -> ChannelConfig:
        if self.type in ("webhook", "slack", "teams") and not self.url:
            raise ValueError(f"a {self.type} channel needs `url`")
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"`url` must be an http:// or https:// URL (got {self.url!r})")
        if self.type == "pagerduty" and not self.routing_key:
            raise ValueError("a pagerduty channel needs `routing_key` (the integration key)")
        if self.type == "opsgenie" and not self.api_key:
            raise ValueError("an opsgenie channel needs `api_key`")
        if self.type == "email":
            missing = [k for k in ("smtp_host", "sender") if not getattr(self, k)]
            if not self.to:
                missing.append("to")
            if missing:
                raise ValueError(f"an email channel needs {', '.join(missing)}")
        if self.secret is not None and self.type != "webhook":
            raise ValueError("`secret` is only for webhook channels")
        return self

    @property
    def endpoint(self) -> str | None:
        if self.url:
            return self.url
        if self.type == "pagerduty":
            return PAGERDUTY_EVENTS_URL
        if self.type == "opsgenie":
            return OPSGENIE_ALERTS_URL
        return None


class RuleMatch(StrictModel):
    """Every given key must match (empty: anything). Lists mean "one of"."""

    priority: list[str] = Field(default_factory=list, max_length=20)
    component: list[str] = Field(default_factory=list, max_length=100)
    route: list[str] = Field(default_factory=list, max_length=100)
    labels: list[str] = Field(default_factory=list, max_length=50)
    source: list[str] = Field(default_factory=list, max_length=50)
    events: list[EventKind] = Field(default_factory=list)


class RuleConfig(StrictModel):
    match: RuleMatch = Field(default_factory=RuleMatch)
    notify: list[str] = Field(min_length=1, max_length=50)
    # later rules are still applied unless a matching rule says stop
    stop: bool = False


class DispatchConfig(StrictModel):
    max_attempts: int = Field(default=6, ge=1, le=50, description="then the delivery is dead")
    backoff: Duration = Field(default=timedelta(seconds=2), description="first retry delay")
    max_backoff: Duration = timedelta(minutes=10)
    poll_interval: Duration = timedelta(milliseconds=200)
    concurrency: int = Field(default=32, ge=1, le=512)
    batch: int = Field(default=200, ge=1, le=5000)
    # a hole in the timeline ids (a transaction still open on PostgreSQL) is waited for
    # this long before the outbox moves past it (a rolled-back id never appears)
    gap_wait: Duration = timedelta(seconds=30)


class ResponseConfig(StrictModel):
    base_url: str | None = Field(
        default=None,
        max_length=500,
        description="the console's external URL for links in messages; default: its listen address",
    )
    channels: list[ChannelConfig] = Field(default_factory=list, max_length=200)
    rules: list[RuleConfig] = Field(default_factory=list, max_length=500)
    dispatch: DispatchConfig = Field(default_factory=DispatchConfig)
    ack_link_ttl: Duration = Field(default=timedelta(hours=24), description="signed link life")
    # key for ack-link signatures and for encrypting generated webhook secrets; empty: one is
    # generated and kept in the store (write ${HYPERCARE_RESPONSE_KEY} to keep it out of it)
    signing_key: str | None = Field(default=None, min_length=32, max_length=200)
    # hosts or networks that URLs arriving through the API may resolve to even when private
    allow_private: list[str] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _unique(self) -> ResponseConfig:
        names = [c.name for c in self.channels]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"channel names must be unique; repeated: {', '.join(dupes)}")
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https:// ({self.base_url!r})")
        return self

    def channel(self, name: str) -> ChannelConfig | None:
        for c in self.channels:
            if c.name == name:
                return c
        return None

    def target_names(self) -> dict[str, str]:
        """Every name a rule may notify, with what it is (part B adds people and more)."""
        return {c.name: "channel" for c in self.channels}


def reference_errors(
    config: ResponseConfig, priorities: list[str]
) -> list[tuple[tuple[str | int, ...], str]]:
    """Dangling names, each with its location in the file (``response.rules[0].notify[1]``)."""
    errors: list[tuple[tuple[str | int, ...], str]] = []
    targets = config.target_names()
    for i, rule in enumerate(config.rules):
        for j, name in enumerate(rule.notify):
            if name not in targets:
                known = ", ".join(sorted(targets)) or "none defined"
                errors.append(
                    (
                        ("response", "rules", i, "notify", j),
                        f"unknown channel {name!r} (known: {known})",
                    )
                )
        for j, p in enumerate(rule.match.priority):
            if p not in priorities:
                errors.append(
                    (
                        ("response", "rules", i, "match", "priority", j),
                        f"unknown priority {p!r} (the matrix has {', '.join(priorities)})",
                    )
                )
    return errors
