"""Auto-priority: map measured impact onto the priority matrix — a pure, configurable table.

Each factor gives the most urgent level it justifies; the issue takes the most urgent of
them. People can override; the service records the override and automation respects it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from hypercare.configtypes import StrictModel


class ImpactTable(StrictModel):
    """Thresholds, most urgent first; every key is optional in configuration."""

    total_failure: str = "P1"  # every call to the route fails
    failing_share: list[tuple[float, str]] = Field(
        default_factory=lambda: [(0.5, "P1"), (0.1, "P2"), (0.01, "P3")]
    )
    criticality: dict[str, str] = Field(
        default_factory=lambda: {"critical": "P1", "high": "P2", "medium": "P3", "low": "P4"}
    )
    # with criticality, a high failing share on a critical route is raised one more level
    critical_share: float = 0.05
    distinct_users: list[tuple[int, str]] = Field(
        default_factory=lambda: [(25, "P1"), (5, "P2"), (2, "P3")]
    )
    source_severity: dict[str, str] = Field(
        default_factory=lambda: {"critical": "P1", "high": "P2", "warning": "P3", "info": "P4"}
    )
    floor: str = "P4"


@dataclass(frozen=True, slots=True)
class Impact:
    failing_share: float | None = None  # share of the route's calls failing, 0..1
    total_failure: bool = False
    criticality: str | None = None  # the route's `criticality` tag
    distinct_users: int = 0  # distinct people who reported it
    source_severity: str | None = None


def suggest_priority(impact: Impact, table: ImpactTable) -> tuple[str, list[str]]:
    """The most urgent level any factor justifies, and why."""
    candidates: list[tuple[str, str]] = [(table.floor, "default")]
    if impact.total_failure:
        candidates.append((table.total_failure, "every call to the route fails"))
    if impact.failing_share is not None:
        for share, level in table.failing_share:
            if impact.failing_share >= share:
                candidates.append((level, f"{impact.failing_share:.0%} of calls failing"))
                break
    if impact.criticality and impact.criticality in table.criticality:
        crit_level = table.criticality[impact.criticality]
        failing = (impact.failing_share or 0) >= table.critical_share or impact.total_failure
        if failing:
            candidates.append((crit_level, f"route criticality {impact.criticality}"))
    for users, level in table.distinct_users:
        if impact.distinct_users >= users:
            candidates.append((level, f"{impact.distinct_users} users reported it"))
            break
    if impact.source_severity and impact.source_severity in table.source_severity:
        candidates.append(
            (table.source_severity[impact.source_severity], f"severity {impact.source_severity}")
        )
    best = min(level for level, _ in candidates)
    reasons = [why for level, why in candidates if level == best and why != "default"]
    return best, reasons
