"""The detector: evaluates every rule on every route over the live windows, every few seconds.

Pure enough to test with synthetic records and a fake clock: `tick(now)` returns findings
(fire, resolve, forecast); turning findings into signals and issues is `detection/service.py`.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field, replace

from hypercare.detection.forecast import Forecast, forecast_breach
from hypercare.detection.live import LiveWindows
from hypercare.detection.rules import (
    Baseline,
    Condition,
    Evidence,
    Metric,
    Rule,
    RuleState,
    evaluate,
    evidence,
    metric_value,
    step,
)


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # "fire" | "resolve" | "forecast"
    rule: Rule
    route: str
    evidence: Evidence
    impact_started_at: float
    at: float
    forecast: Forecast | None = None

    @property
    def dedup_key(self) -> str:
        return f"gateway:{self.rule.name}:{self.route}"


@dataclass
class _RouteBaseline:
    computed_at: float
    values: dict[Metric, Baseline] = field(default_factory=dict)


class Detector:
    def __init__(
        self,
        rules: list[Rule],
        live: LiveWindows,
        *,
        window_seconds: float = 30.0,
        baseline_minutes: int = 30,
        forecast_points: int = 10,
        forecast_horizon: float = 900.0,
    ) -> None:
        self.rules = rules
        self.live = live
        self.window = window_seconds
        self.baseline_minutes = baseline_minutes
        self.forecast_points = forecast_points
        self.forecast_horizon = forecast_horizon
        self.states: dict[tuple[str, str], RuleState] = {}
        self._baselines: dict[str, _RouteBaseline] = {}
        self._forecasting: set[tuple[str, str]] = set()

    def firing(self) -> list[tuple[str, str]]:
        """(rule, route) pairs currently firing."""
        return [key for key, st in self.states.items() if st.phase.value == "firing"]

    def firing_since(self, route: str) -> list[tuple[str, float]]:
        """(rule, firing since) for the rules firing on `route`."""
        return [
            (rule, st.firing_since or 0.0)
            for (rule, r), st in self.states.items()
            if r == route and st.phase.value == "firing"
        ]

    def baseline(self, route: str, metric: Metric, now: float) -> Baseline:
        cached = self._baselines.get(route)
        if cached is None or now - cached.computed_at >= 60:
            cached = self._baselines[route] = _RouteBaseline(now)
        if metric not in cached.values:
            cached.values[metric] = self._compute_baseline(route, metric, now)
        return cached.values[metric]

    def _compute_baseline(self, route: str, metric: Metric, now: float) -> Baseline:
        # the previous `baseline_minutes`, leaving out the last two (they may hold the fault)
        end = now - 120
        minutes = self.live.series(route, end, self.baseline_minutes, 60.0)
        values = [v for w in minutes if (v := metric_value(w, metric)) is not None and w.requests]
        rps = [w.requests / 60 for w in minutes if w.requests]
        return Baseline(
            value=statistics.median(values) if len(values) >= 3 else None,
            history=tuple(values),
            requests_per_second=statistics.median(rps) if len(rps) >= 3 else None,
        )

    def tick(self, now: float) -> list[Finding]:
        findings: list[Finding] = []
        start = now - self.window
        for route in list(self.live.routes):
            stats = self.live.stats(route, start, now)
            for rule in self.rules:
                if not rule.applies_to(route):
                    continue
                needs_baseline = rule.condition in (
                    Condition.baseline_ratio,
                    Condition.zscore,
                    Condition.drop_to_zero,
                )
                base = self.baseline(route, rule.metric, now) if needs_baseline else None
                verdict = evaluate(rule, stats, base)
                key = (rule.name, route)
                state, event = step(rule, self.states.get(key, RuleState()), verdict, start, now)
                self.states[key] = state
                if event is not None:
                    started = event.impact_started_at
                    if event.kind == "fire":
                        started = self.onset(rule, route, start, now, base) or started
                    findings.append(
                        Finding(
                            event.kind, rule, route, evidence(rule, stats, verdict), started, now
                        )
                    )
                    self._forecasting.discard(key)
                elif state.phase.value == "ok" and rule.condition is Condition.above:
                    findings.extend(self._forecast(rule, route, now))
        return findings

    def onset(
        self, rule: Rule, route: str, start: float, now: float, base: Baseline | None
    ) -> float | None:
        """When the breach began: walking back from `now` in 3-second steps, the earliest
        second from which every step still breaches the rule."""
        earliest: float | None = None
        t = now
        loose = replace(rule, min_requests=1)
        while t - 3 >= start - self.window:
            stats = self.live.stats(route, t - 3, t)
            if stats.requests == 0 or not evaluate(loose, stats, base).breached:
                break
            earliest = t - 3
            t -= 3
        return earliest

    def _forecast(self, rule: Rule, route: str, now: float) -> list[Finding]:
        """An early warning when a rising trend will cross the rule's threshold soon."""
        key = (rule.name, route)
        step_s = self.window / 2
        windows = self.live.series(route, now, self.forecast_points, step_s)
        points = [
            (w.end, v)
            for w in windows
            if w.requests >= max(1, rule.min_requests // 4)
            and (v := metric_value(w, rule.metric)) is not None
        ]
        projected = forecast_breach(points, rule.threshold, horizon_seconds=self.forecast_horizon)
        if projected is None:
            self._forecasting.discard(key)
            return []
        if key in self._forecasting:
            return []
        self._forecasting.add(key)
        stats = windows[-1]
        ev = evidence(rule, stats, evaluate(rule, stats))
        return [Finding("forecast", rule, route, ev, now, now, forecast=projected)]
