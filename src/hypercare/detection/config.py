"""The ``detection:`` section: rules over live telemetry, correlation and validation."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field

from hypercare.bounds import Input
from hypercare.configtypes import Duration, StrictModel
from hypercare.detection.impact import ImpactTable
from hypercare.detection.rules import Condition, Metric, RouteOverride, Rule, default_rules


class RuleConfig(StrictModel, Input):
    """One alert rule as written in the file (see docs/configuration.md#detection)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    metric: Metric
    condition: Condition = Condition.above
    threshold: float
    for_: Duration = Field(default=timedelta(0), alias="for")
    clear_for: Duration = timedelta(seconds=20)
    clear_ratio: float = Field(default=0.8, gt=0, le=1)
    min_requests: int = Field(default=20, ge=0)
    min_events: int = Field(default=0, ge=0, le=1_000_000_000)
    floor: float = 0.0
    severity: Literal["critical", "high", "warning", "info"] = "high"
    routes: list[str] = Field(default_factory=list)
    description: str = ""
    category: Literal["", "security"] = ""

    def to_rule(self) -> Rule:
        return Rule(
            name=self.name,
            metric=self.metric,
            condition=self.condition,
            threshold=self.threshold,
            for_seconds=self.for_.total_seconds(),
            clear_for_seconds=self.clear_for.total_seconds(),
            clear_ratio=self.clear_ratio,
            min_requests=self.min_requests,
            min_events=self.min_events,
            floor=self.floor,
            severity=self.severity,
            routes=tuple(self.routes),
            description=self.description,
            category=self.category,
        )


class RouteDetectionConfig(StrictModel):
    """Per-route changes to the rules: ``detection.routes.<route name>``."""

    # rule name -> threshold, e.g. {p95-above-bound: 2500} for a slow report route
    thresholds: dict[str, float] = Field(default_factory=dict, max_length=50)
    min_requests: dict[str, int] = Field(default_factory=dict, max_length=50)
    min_events: dict[str, int] = Field(default_factory=dict, max_length=50)
    disabled: list[str] = Field(default_factory=list, max_length=50)  # rule names off here
    # a new route (or a new release under a new route name) takes baselines from this route
    # until it has enough history of its own
    baseline_from: str | None = Field(default=None, min_length=1, max_length=200)

    def to_override(self) -> RouteOverride:
        return RouteOverride(
            thresholds=dict(self.thresholds),
            min_requests=dict(self.min_requests),
            min_events=dict(self.min_events),
            disabled=frozenset(self.disabled),
            baseline_from=self.baseline_from,
        )


class DetectionConfig(StrictModel):
    enabled: bool = True
    interval: Duration = timedelta(seconds=2)  # how often rules are evaluated
    window: Duration = timedelta(seconds=30)  # the live window each evaluation looks at
    default_rules: bool = True  # every route gets the built-in rules
    rules: list[RuleConfig] = Field(default_factory=list)
    forecast_horizon: Duration = timedelta(minutes=15)
    correlation_threshold: float = Field(default=0.5, gt=0)
    correlation_window: Duration = timedelta(hours=24)  # open issues older than this are ignored
    validation_window: Duration = timedelta(minutes=15)
    impact: ImpactTable = Field(default_factory=ImpactTable)
    routes: dict[str, RouteDetectionConfig] = Field(default_factory=dict, max_length=1000)

    def overrides(self) -> dict[str, RouteOverride]:
        return {name: r.to_override() for name, r in self.routes.items()}

    def all_rules(self, extra: list[RuleConfig] | None = None) -> list[Rule]:
        """Configured rules and `extra` ones (added through the API), plus the defaults not
        overridden by name."""
        mine = [r.to_rule() for r in [*self.rules, *(extra or [])]]
        if not self.default_rules:
            return mine
        names = {r.name for r in mine}
        return [*mine, *(r for r in default_rules() if r.name not in names)]
