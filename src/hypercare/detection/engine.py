"""The detector: evaluates every rule on every route over the live windows, every few seconds.

Pure enough to test with synthetic records and a fake clock: `tick(now)` returns findings
(fire, resolve, forecast); turning findings into signals and issues is `detection/service.py`.

Baselines come from per-minute history: the stored minute rollups (`set_history`, loaded by
the detection job, so a console restart keeps them), with the live windows filling in the
minutes not flushed yet. A route with too little history of its own takes the history of the
route named by its `baseline_from` (its previous release, or a peer).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field, replace

from hypercare.detection.forecast import Forecast, forecast_breach
from hypercare.detection.live import LiveWindows
from hypercare.detection.rules import (
    SECURITY,
    Baseline,
    Condition,
    Evidence,
    Metric,
    RouteOverride,
    Rule,
    RuleState,
    WindowStats,
    evaluate,
    evidence,
    for_route,
    metric_events,
    metric_value,
    severity_of,
    step,
)

# a baseline needs this many minutes of history, each with at least MINUTE_CALLS calls
BASELINE_MINUTES = 5
MINUTE_CALLS = 20
# onset: the breach is followed back in chunks of this many seconds
ONSET_CHUNK = 3


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
        # a security finding never shares a dedup group with an application-error one
        prefix = "security" if self.rule.category == SECURITY else "gateway"
        return f"{prefix}:{self.rule.name}:{self.route}"

    @property
    def severity(self) -> str:
        return severity_of(self.rule, self.evidence.value, self.evidence.reference)


@dataclass
class _RouteBaseline:
    computed_at: float
    minutes: list[WindowStats] | None = None  # the usable minutes, shared by every metric
    values: dict[Metric, Baseline] = field(default_factory=dict)


def baseline_of(minutes: list[WindowStats], metric: Metric) -> Baseline:
    """The baseline of `metric` over usable minutes; empty (relative rules stay off) until
    there are BASELINE_MINUTES of them."""
    if len(minutes) < BASELINE_MINUTES:
        return Baseline()
    values = [v for w in minutes if (v := metric_value(w, metric)) is not None]
    return Baseline(
        value=statistics.median(values) if len(values) >= BASELINE_MINUTES else None,
        history=tuple(values),
        requests_per_second=statistics.median(w.requests / 60 for w in minutes),
    )


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
        overrides: dict[str, RouteOverride] | None = None,
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
        self.overrides: dict[str, RouteOverride] = dict(overrides or {})
        # stored minute rollups per route: minute start -> the minute's numbers
        self.history: dict[str, dict[int, WindowStats]] = {}

    def set_history(self, history: dict[str, dict[int, WindowStats]]) -> None:
        """Replace the stored per-minute history (from the minute rollups); cached
        baselines are recomputed on their next use."""
        self.history = history
        self._baselines.clear()

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
            if cached.minutes is None:
                cached.minutes = self._usable_minutes(route, now)
            cached.values[metric] = baseline_of(cached.minutes, metric)
        return cached.values[metric]

    def minutes(self, route: str, now: float) -> list[WindowStats]:
        """The route's previous `baseline_minutes` minutes, leaving out the last two (they
        may hold the fault): stored rollups first, the live windows for the rest."""
        end = int((now - 120) // 60) * 60
        stored = self.history.get(route, {})
        out = []
        for m in range(end - 60 * self.baseline_minutes, end, 60):
            found = stored.get(m)
            out.append(found if found is not None else self.live.stats(route, m, m + 60))
        return out

    def _usable_minutes(self, route: str, now: float) -> list[WindowStats]:
        """The minutes a baseline of `route` rests on: its own when it has enough, else
        those of its `baseline_from` route."""
        minutes = [w for w in self.minutes(route, now) if w.requests >= MINUTE_CALLS]
        override = self.overrides.get(route)
        peer = override.baseline_from if override is not None else None
        if len(minutes) < BASELINE_MINUTES and peer and peer != route:
            minutes = [w for w in self.minutes(peer, now) if w.requests >= MINUTE_CALLS]
        return minutes

    def rules_for(self, route: str) -> list[Rule]:
        """The rules that apply on `route`, with its overrides."""
        override = self.overrides.get(route)
        out = []
        for rule in self.rules:
            if rule.applies_to(route) and (mine := for_route(rule, override)) is not None:
                out.append(mine)
        return out

    def tick(self, now: float) -> list[Finding]:
        findings: list[Finding] = []
        for route in list(self.live.routes):
            findings.extend(self.tick_route(route, now))
        return findings

    def tick_route(self, route: str, now: float) -> list[Finding]:
        """One route's part of `tick` (the detection loop yields to the event loop between
        routes, so a large route set does not hold the console's loop at once)."""
        findings: list[Finding] = []
        start = now - self.window
        stats = self.live.stats(route, start, now)
        series: list[WindowStats] | None = None
        for rule in self.rules_for(route):
            needs_baseline = rule.condition in (
                Condition.baseline_ratio,
                Condition.zscore,
                Condition.drop_to_zero,
            )
            base = self.baseline(route, rule.metric, now) if needs_baseline else None
            verdict = evaluate(rule, stats, base)
            key = (rule.name, route)
            state = self.states.get(key, RuleState())
            breach_start = now
            if verdict.breached and state.phase.value == "ok":
                # `for` counts from the first breaching second, not the window's edge
                breach_start = self.onset(rule, route, now, base) or now
            state, event = step(rule, state, verdict, breach_start, now)
            self.states[key] = state
            if event is not None:
                findings.append(
                    Finding(
                        event.kind,
                        rule,
                        route,
                        evidence(rule, stats, verdict),
                        event.impact_started_at,
                        now,
                    )
                )
                self._forecasting.discard(key)
            elif state.phase.value == "ok" and rule.condition is Condition.above:
                if series is None:  # the same windows serve every rule of the route
                    step_s = self.window / 2
                    series = self.live.series(route, now, self.forecast_points, step_s)
                findings.extend(self._forecast(rule, route, now, series))
        return findings

    def onset(self, rule: Rule, route: str, now: float, base: Baseline | None) -> float | None:
        """The first bad second of the breach on `route`, from its per-second telemetry.

        Walking back from the newest second with calls (batches arrive a second or two
        late, so the last seconds may be empty) in chunks of ONSET_CHUNK seconds, while each
        chunk still breaches the rule on its own; then the first second of the earliest such
        chunk that breaches by itself. A rule on target health (no traffic-based value)
        follows the failing calls instead. None when no chunk breaches.
        """
        window = self.live.routes.get(route)
        if window is None:
            return None
        oldest = now - 2 * self.window
        seconds = [b.second for b in window.buckets if oldest <= b.second < now and b.requests]
        if not seconds:
            return None
        if rule.metric is Metric.healthy_targets:
            loose = Rule(rule.name, Metric.error_rate, Condition.above, 0.0, min_requests=1)
        else:
            loose = replace(rule, min_requests=1, min_events=1)
        earliest: int | None = None
        t = seconds[-1] + 1
        while t - ONSET_CHUNK >= oldest:
            chunk = self.live.stats(route, t - ONSET_CHUNK, t)
            if chunk.requests == 0 or not evaluate(loose, chunk, base).breached:
                break
            earliest = t - ONSET_CHUNK
            t -= ONSET_CHUNK
        if earliest is None:
            return None
        for second in range(earliest, earliest + ONSET_CHUNK):
            alone = self.live.stats(route, second, second + 1)
            if alone.requests and evaluate(loose, alone, base).breached:
                return float(second)
        return float(earliest)

    def _forecast(
        self, rule: Rule, route: str, now: float, windows: list[WindowStats]
    ) -> list[Finding]:
        """An early warning when a rising trend will cross the rule's threshold soon;
        `windows` are the route's last `forecast_points` half-windows, oldest first."""
        key = (rule.name, route)
        if metric_events(windows[-1], rule.metric) < max(1, 2 * rule.min_events):
            # a trend drawn from a stray failure or two is noise, not an early warning
            self._forecasting.discard(key)
            return []
        points = [
            (w.end, v)
            for w in windows
            # each point is a half-window: it needs half the calls the rule's window needs
            if w.requests >= max(1, rule.min_requests // 2)
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
