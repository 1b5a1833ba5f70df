"""The ``triage:`` section of the configuration file: the priority matrix and SLA clock."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, Field, model_validator

from hypercare.configtypes import Duration, StrictModel, parse_duration


def _sla_target(value: object) -> timedelta | None:
    if value is None or value in ("post-hypercare", "none"):
        return None
    return parse_duration(value)


class PriorityLevel(StrictModel):
    level: str = Field(pattern=r"^P[1-9]$", description="P1 (most urgent) to P9")
    name: str
    description: str = ""
    impact: str = ""
    # null or 'post-hypercare' means "no SLA during the hypercare period"
    target: Annotated[timedelta | None, BeforeValidator(_sla_target)] = None
    escalation: list[str] = Field(default_factory=list)


DEFAULT_MATRIX: tuple[PriorityLevel, ...] = (
    PriorityLevel(
        level="P1",
        name="Critical",
        description="System down or core functionality unusable",
        impact="Major disruption, financial loss, widespread impact",
        target=timedelta(hours=1),
        escalation=[
            "all hypercare leads",
            "executive team",
            "24/7 on-call engineering",
        ],
    ),
    PriorityLevel(
        level="P2",
        name="High",
        description="Major feature impaired, significant degradation, data-integrity risk",
        impact="Many users, noticeable business impact",
        target=timedelta(hours=4),
        escalation=["team leads", "senior engineers", "product manager"],
    ),
    PriorityLevel(
        level="P3",
        name="Medium",
        description="Minor feature issue, cosmetic bug, minor hiccups",
        impact="Limited users, minor inconvenience",
        target=timedelta(hours=24),
        escalation=["assigned engineering team", "support lead"],
    ),
    PriorityLevel(
        level="P4",
        name="Low",
        description="Typos, minor UI glitches, enhancement requests",
        impact="Minimal",
        target=None,
        escalation=["backlog"],
    ),
)


class TriageConfig(StrictModel):
    matrix: list[PriorityLevel] = Field(default_factory=lambda: list(DEFAULT_MATRIX), min_length=1)
    at_risk_fraction: float = Field(default=0.25, gt=0, lt=1)
    sla_check_interval: Duration = timedelta(seconds=15)
    default_priority: str = "P3"

    @model_validator(mode="after")
    def _consistent(self) -> TriageConfig:
        names = [lv.level for lv in self.matrix]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"priority levels must be unique; repeated: {', '.join(dupes)}")
        if self.default_priority not in names:
            raise ValueError(
                f"default_priority {self.default_priority!r} is not in the matrix "
                f"({', '.join(names)})"
            )
        return self
