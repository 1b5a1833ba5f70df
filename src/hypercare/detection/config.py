"""The ``detection:`` section: rules over live telemetry, correlation and validation."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field

from hypercare.bounds import Input
from hypercare.configtypes import Duration, StrictModel
from hypercare.detection.impact import ImpactTable
from hypercare.detection.rules import Condition, Metric, Rule, default_rules


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
    floor: float = 0.0
    severity: Literal["critical", "high", "warning", "info"] = "high"
    routes: list[str] = Field(default_factory=list)
    description: str = ""

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
            floor=self.floor,
            severity=self.severity,
            routes=tuple(self.routes),
            description=self.description,
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

    def all_rules(self, extra: list[RuleConfig] | None = None) -> list[Rule]:
        """Configured rules and `extra` ones (added through the API), plus the defaults not
        overridden by name."""
        mine = [r.to_rule() for r in [*self.rules, *(extra or [])]]
        if not self.default_rules:
            return mine
        names = {r.name for r in mine}
        return [*mine, *(r for r in default_rules() if r.name not in names)]
