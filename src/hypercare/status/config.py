"""The ``status:`` section: the public status page, its components and their thresholds.

The smallest useful section names one component by its routes::

    status:
      components:
        - {name: Payments, routes: [payment-status]}

Everything else has a default (see docs/configuration.md#status)::

    status:
      page: {name: Shop status, url: https://status.example.com, logo: /static/logo.svg,
             colours: {operational: "#1a7f37", major_outage: "#b42318"}}
      components:
        - name: Payments
          description: Card payments and refunds
          group: Checkout
          order: 10
          routes: [payment-create, payment-status]
          tags: {component: payments}        # or/and every route carrying these tags
      thresholds:
        degraded: {error_rate: 0.02, latency_ratio: 2.0}
        partial: {error_rate: 0.10}
        major: {error_rate: 0.50}
      hysteresis: {raise_after: 5s, clear_after: 60s}
      reminders: {P1: 30m, P2: 60m}
      templates:
        outage: "We are seeing errors on {{ component }} since {{ start_time }}."
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from hypercare.configtypes import Duration, StrictModel
from hypercare.status.rules import (
    SCENARIOS,
    TEMPLATE_DEFAULTS,
    Level,
    TemplateError,
    Thresholds,
    check_template,
)

_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
_NAME = r"^[^\x00-\x1f<>]{1,80}$"


class ComponentConfig(StrictModel):
    """One component of the page, derived from the routes it names or tags."""

    name: str = Field(pattern=_NAME)
    description: str = Field(default="", max_length=500)
    group: str | None = Field(default=None, max_length=80)
    order: int = Field(default=0, ge=-10_000, le=10_000)
    routes: list[str] = Field(default_factory=list, max_length=200)
    tags: dict[str, str] = Field(default_factory=dict, max_length=20)

    @model_validator(mode="after")
    def _something(self) -> ComponentConfig:
        if not self.routes and not self.tags:
            raise ValueError(
                f"component {self.name!r} needs `routes` (gateway route names) or `tags` "
                "(routes carrying all of these tags)"
            )
        return self


class LevelConfig(StrictModel):
    """When a component reaches a level: any one of these is enough."""

    error_rate: float | None = Field(default=None, gt=0, le=1)
    latency_ratio: float | None = Field(default=None, gt=1, le=1000)
    p95_ms: float | None = Field(default=None, gt=0, le=3_600_000)
    no_healthy_target: bool = False


class ThresholdsConfig(StrictModel):
    degraded: LevelConfig = Field(
        default_factory=lambda: LevelConfig(error_rate=0.02, latency_ratio=3.0)
    )
    partial: LevelConfig = Field(default_factory=lambda: LevelConfig(error_rate=0.10))
    major: LevelConfig = Field(
        default_factory=lambda: LevelConfig(error_rate=0.50, no_healthy_target=True)
    )
    window: Duration = timedelta(seconds=10)
    min_requests: int = Field(default=10, ge=1, le=1_000_000)

    def to_rules(self) -> Thresholds:
        def level(c: LevelConfig) -> Level:
            return Level(c.error_rate, c.latency_ratio, c.p95_ms, c.no_healthy_target)

        return Thresholds(
            degraded=level(self.degraded),
            partial=level(self.partial),
            major=level(self.major),
            window_seconds=max(1.0, self.window.total_seconds()),
            min_requests=self.min_requests,
        )


class HysteresisConfig(StrictModel):
    """A worse state is taken after `raise_after` of it; a better one after `clear_after`."""

    raise_after: Duration = timedelta(seconds=2)
    clear_after: Duration = timedelta(seconds=30)


class PageConfig(StrictModel):
    name: str = Field(default="Service status", pattern=_NAME)
    url: str | None = Field(default=None, max_length=500)
    logo: str | None = Field(default=None, max_length=500)
    time_zone: str = Field(default="Etc/UTC", max_length=60)
    colours: dict[
        Literal["operational", "degraded", "partial", "major", "maintenance", "accent"], str
    ] = Field(default_factory=dict)
    history_days: int = Field(default=90, ge=1, le=365)

    @field_validator("colours")
    @classmethod
    def _hex(cls, value: dict[str, str]) -> dict[str, str]:
        for k, v in value.items():
            if not _COLOUR.match(v):
                raise ValueError(f"colours.{k}: {v!r} is not a #rrggbb colour")
        return value

    @field_validator("logo", "url")
    @classmethod
    def _link(cls, value: str | None) -> str | None:
        if value and not value.startswith(("https://", "http://", "/")):
            raise ValueError(f"{value!r}: use an http(s):// URL or a path starting with /")
        return value


Priority = Literal["P1", "P2", "P3", "P4"]


def _default_reminders() -> dict[Priority, timedelta]:
    return {"P1": timedelta(minutes=30), "P2": timedelta(hours=1), "P3": timedelta(hours=4)}


class StatusConfig(StrictModel):
    enabled: bool = True
    page: PageConfig = Field(default_factory=PageConfig)
    components: list[ComponentConfig] = Field(default_factory=list, max_length=200)
    thresholds: ThresholdsConfig = Field(default_factory=ThresholdsConfig)
    hysteresis: HysteresisConfig = Field(default_factory=HysteresisConfig)
    # no public update for this long on an incident of this priority: remind the responders
    reminders: dict[Priority, Duration] = Field(default_factory=_default_reminders)
    templates: dict[str, str] = Field(default_factory=dict)
    # public requests per client address and minute (page, feeds and JSON together)
    rate_limit: int = Field(default=600, ge=1, le=10_000_000)
    # signals on a route under maintenance: "expected" (kept, no issue, nobody paged) or "open"
    maintenance_signals: Literal["expected", "open"] = "expected"
    # open a draft public incident (unpublished) when a component leaves operational
    suggest_incidents: bool = True

    @field_validator("templates")
    @classmethod
    def _templates(cls, value: dict[str, str]) -> dict[str, str]:
        for scenario, text in value.items():
            if scenario not in SCENARIOS:
                raise ValueError(
                    f"templates.{scenario}: unknown scenario (use one of {', '.join(SCENARIOS)})"
                )
            try:
                check_template(text)
            except TemplateError as exc:
                raise ValueError(f"templates.{scenario}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _unique(self) -> StatusConfig:
        seen: set[str] = set()
        for c in self.components:
            if c.name in seen:
                raise ValueError(f"components: {c.name!r} is named twice")
            seen.add(c.name)
        return self

    def template(self, scenario: str) -> str:
        return self.templates.get(scenario) or TEMPLATE_DEFAULTS[scenario]
