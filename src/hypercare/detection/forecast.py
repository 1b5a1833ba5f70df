""" "Is it about to break?": project a rising metric to the time it crosses its limit.

A least-squares line through recent points; a forecast is made only when the trend is
clearly rising (positive slope, good fit) and the crossing is within the horizon.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Forecast:
    breach_at: float  # Unix seconds when the line crosses the limit
    slope_per_minute: float
    r_squared: float
    current: float


def forecast_breach(
    points: Sequence[tuple[float, float]],
    limit: float,
    *,
    horizon_seconds: float = 900.0,
    min_points: int = 6,
    min_r_squared: float = 0.7,
) -> Forecast | None:
    """When will the trend through `points` ((time, value), oldest first) reach `limit`?

    None when there are too few points, the trend is flat or falling, the fit is poor, the
    limit is already crossed, or the crossing is further away than `horizon_seconds`.
    """
    if len(points) < min_points:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var_t = sum((t - mean_t) ** 2 for t, _ in points)
    if var_t == 0:
        return None
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    slope = cov / var_t
    if slope <= 0:
        return None
    intercept = mean_v - slope * mean_t
    ss_tot = sum((v - mean_v) ** 2 for _, v in points)
    ss_res = sum((v - (intercept + slope * t)) ** 2 for t, v in points)
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0
    if r2 < min_r_squared:
        return None
    last_t = points[-1][0]
    current = intercept + slope * last_t
    if current >= limit:
        return None
    breach_at = (limit - intercept) / slope
    if breach_at - last_t > horizon_seconds:
        return None
    return Forecast(breach_at=breach_at, slope_per_minute=slope * 60, r_squared=r2, current=current)
