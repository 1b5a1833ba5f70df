"""Alert rules over a window of live route telemetry — pure decisions, no I/O.

A rule names a metric, a condition and how long the condition must hold. Each (rule, route)
pair has a small state machine with hysteresis so a flapping metric does not flap signals:

    ok ──breach──▶ pending ──held `for`──▶ firing ──recovered for `clear_for`──▶ ok
      ◀─no breach─┘                          ▲  └─breach again─┘

`for` is counted from the first breaching second (found in the route's per-second telemetry
when the rule starts to breach, see `detection/engine.py`), and that second is also the
firing rule's `impact_started_at`, so MTTD is measured from telemetry rather than from when
someone noticed or from the edge of the evaluation window.

Two families of rules: absolute ones (a bound, a minimum of traffic and of bad calls) work
from a route's first minute; relative ones (against a baseline or a history) switch on once
enough history exists. Each rule names the smallest sample its statistic needs
(`min_requests`, `min_events`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum


class Metric(StrEnum):
    requests = "requests"
    rps = "rps"
    error_rate = "error_rate"  # share of requests answered 5xx or failed in the gateway
    status_5xx = "5xx"  # share of requests answered 5xx
    status_4xx = "4xx"  # share of requests answered 4xx
    p50 = "p50"
    p95 = "p95"
    p99 = "p99"
    auth_failures = "auth_failures"  # 401/403 per second
    auth_failure_share = "auth_failure_share"  # share of requests answered 401/403
    rate_limited = "rate_limited"  # 429 per second
    upstream_errors = "upstream_errors"  # timeouts, resets, connect failures per second
    healthy_targets = "healthy_targets"


class Condition(StrEnum):
    above = "above"  # value > threshold
    below = "below"  # value < threshold
    baseline_ratio = "baseline_ratio"  # value > threshold × baseline (and > floor)
    zscore = "zscore"  # robust z-score of value against history > threshold
    drop_to_zero = "drop_to_zero"  # no traffic although the baseline had some


@dataclass(frozen=True, slots=True)
class WindowStats:
    """What the gateway saw on one route over one evaluation window (plain numbers)."""

    route: str
    start: float  # Unix seconds
    end: float
    requests: int = 0
    status_5xx: int = 0
    status_4xx: int = 0
    gateway_errors: int = 0  # failed in the gateway without a 5xx from upstream (e.g. 502/504)
    auth_failures: int = 0
    rate_limited: int = 0
    upstream_errors: int = 0
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    healthy_targets: int | None = None
    top_paths: tuple[tuple[str, int], ...] = ()
    top_errors: tuple[tuple[str, int], ...] = ()
    sample_request_ids: tuple[str, ...] = ()

    @property
    def seconds(self) -> float:
        return max(self.end - self.start, 1e-9)


def metric_events(stats: WindowStats, metric: Metric) -> int:
    """How many calls of the window count towards the metric: the failing calls of an error
    rate, the 401/403 of an auth metric; all requests for traffic and latency metrics."""
    if metric is Metric.error_rate:
        return stats.status_5xx + stats.gateway_errors
    if metric is Metric.status_5xx:
        return stats.status_5xx
    if metric is Metric.status_4xx:
        return stats.status_4xx
    if metric in (Metric.auth_failures, Metric.auth_failure_share):
        return stats.auth_failures
    if metric is Metric.rate_limited:
        return stats.rate_limited
    if metric is Metric.upstream_errors:
        return stats.upstream_errors
    return stats.requests


LATENCY_METRICS = frozenset({Metric.p50, Metric.p95, Metric.p99})
SEVERITIES = ("info", "warning", "high", "critical")  # least urgent first
SECURITY = "security"


def metric_value(stats: WindowStats, metric: Metric) -> float | None:
    """The metric over the window; None when it is undefined (no traffic, no latency)."""
    n = stats.requests
    if metric is Metric.requests:
        return float(n)
    if metric is Metric.rps:
        return n / stats.seconds
    if metric is Metric.healthy_targets:
        return None if stats.healthy_targets is None else float(stats.healthy_targets)
    if metric in (Metric.p50, Metric.p95, Metric.p99):
        value: float | None = getattr(stats, metric.name)
        return value
    if metric is Metric.auth_failures:
        return stats.auth_failures / stats.seconds
    if metric is Metric.rate_limited:
        return stats.rate_limited / stats.seconds
    if metric is Metric.upstream_errors:
        return stats.upstream_errors / stats.seconds
    if n == 0:
        return None
    if metric is Metric.status_5xx:
        return stats.status_5xx / n
    if metric is Metric.status_4xx:
        return stats.status_4xx / n
    if metric is Metric.auth_failure_share:
        return stats.auth_failures / n
    return min(1.0, (stats.status_5xx + stats.gateway_errors) / n)


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    metric: Metric
    condition: Condition
    threshold: float
    for_seconds: float = 0.0  # how long the breach must hold before firing
    clear_for_seconds: float = 20.0  # how long it must stay recovered before resolving
    clear_ratio: float = 0.8  # hysteresis: recovered when value is past threshold × ratio
    min_requests: int = 20  # ignore windows with less traffic than this
    min_events: int = 0  # ... or with fewer calls counting towards the metric (metric_events)
    floor: float = 0.0  # baseline_ratio: also require value > floor (e.g. 50 ms)
    severity: str = "high"  # critical | high | warning | info
    routes: tuple[str, ...] = ()  # empty = every route
    description: str = ""
    category: str = ""  # "security": its own signal kind, title and label (never merged)

    def applies_to(self, route: str) -> bool:
        return not self.routes or route in self.routes


@dataclass(frozen=True, slots=True)
class Baseline:
    """What is normal for a route: the same hour on previous days, or a trailing history."""

    value: float | None = None  # the metric's typical value
    history: tuple[float, ...] = ()  # recent values of the metric, for z-scores
    requests_per_second: float | None = None  # typical traffic, for drop-to-zero


@dataclass(frozen=True, slots=True)
class Verdict:
    breached: bool
    recovered: bool
    value: float | None
    reference: float | None  # the threshold the value was compared with
    reason: str


def evaluate(rule: Rule, stats: WindowStats, baseline: Baseline | None = None) -> Verdict:
    """Does the window breach the rule, and has it recovered past the hysteresis band?"""
    value = metric_value(stats, rule.metric)
    base = baseline or Baseline()
    if rule.condition is Condition.drop_to_zero:
        typical = base.requests_per_second
        if typical is None or typical * stats.seconds < rule.min_requests:
            return Verdict(False, True, value, None, "not enough past traffic to judge a drop")
        dropped = stats.requests == 0
        return Verdict(
            dropped,
            not dropped,
            float(stats.requests),
            typical,
            f"no requests in {stats.seconds:.0f}s; usually {typical:.1f} req/s",
        )
    if rule.metric is not Metric.healthy_targets and stats.requests < rule.min_requests:
        return Verdict(False, True, value, None, f"fewer than {rule.min_requests} requests")
    if rule.min_events and metric_events(stats, rule.metric) < rule.min_events:
        return Verdict(False, True, value, None, f"fewer than {rule.min_events} {rule.metric}")
    if value is None:
        return Verdict(False, True, None, None, "metric undefined for this window")
    if rule.condition is Condition.above:
        ref = rule.threshold
        return Verdict(value > ref, value <= ref * rule.clear_ratio, value, ref, f"> {ref:g}")
    if rule.condition is Condition.below:
        ref = rule.threshold
        clear = ref / rule.clear_ratio if rule.clear_ratio else ref
        return Verdict(value < ref, value >= clear, value, ref, f"< {ref:g}")
    if rule.condition is Condition.baseline_ratio:
        if base.value is None or base.value <= 0:
            return Verdict(False, True, value, None, "no baseline yet")
        ref = max(base.value * rule.threshold, rule.floor)
        clear_ref = max(base.value * rule.threshold * rule.clear_ratio, rule.floor)
        return Verdict(
            value > ref,
            value <= clear_ref,
            value,
            ref,
            f"> {rule.threshold:g}× baseline {base.value:.3g}",
        )
    z = robust_zscore(value, base.history)
    if z is None:
        return Verdict(False, True, value, None, "not enough history for a z-score")
    return Verdict(
        z > rule.threshold,
        z <= rule.threshold * rule.clear_ratio,
        value,
        rule.threshold,
        f"robust z-score {z:.1f} > {rule.threshold:g}",
    )


def robust_zscore(value: float, history: Sequence[float]) -> float | None:
    """(value − median) / (1.4826 × MAD); None with fewer than 5 points of history."""
    if len(history) < 5:
        return None
    med = statistics.median(history)
    mad = statistics.median(abs(h - med) for h in history)
    scale = 1.4826 * mad
    if scale == 0:
        scale = max(abs(med) * 0.05, 1e-9)
    return (value - med) / scale


class Phase(StrEnum):
    ok = "ok"
    pending = "pending"
    firing = "firing"


@dataclass(frozen=True, slots=True)
class RuleState:
    phase: Phase = Phase.ok
    breach_since: float | None = None  # the first breaching second
    firing_since: float | None = None
    recovered_since: float | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """What a step of the state machine asks the caller to do."""

    kind: str  # "fire" or "resolve"
    impact_started_at: float
    at: float


def step(
    rule: Rule, state: RuleState, verdict: Verdict, breach_start: float, now: float
) -> tuple[RuleState, Transition | None]:
    """Advance one (rule, route) state machine by one evaluation. `breach_start` is the
    first breaching second when this evaluation starts a breach (`for` counts from it)."""
    if state.phase is Phase.ok:
        if not verdict.breached:
            return state, None
        state = RuleState(Phase.pending, breach_since=min(breach_start, now))
    if state.phase is Phase.pending:
        if not verdict.breached:
            return RuleState(), None
        since = state.breach_since if state.breach_since is not None else now
        if now - since >= rule.for_seconds:
            firing = RuleState(Phase.firing, breach_since=since, firing_since=now)
            return firing, Transition("fire", impact_started_at=since, at=now)
        return state, None
    # firing: resolve only after the value stayed past the hysteresis band for clear_for
    if not verdict.recovered:
        return replace(state, recovered_since=None), None
    recovered_since = state.recovered_since if state.recovered_since is not None else now
    if now - recovered_since >= rule.clear_for_seconds:
        since = state.breach_since if state.breach_since is not None else now
        return RuleState(), Transition("resolve", impact_started_at=since, at=now)
    return replace(state, recovered_since=recovered_since), None


# latency at or above this (ms), and twice the rule's reference, is a "high" finding
LATENCY_HIGH_MS = 1000.0


def severity_of(rule: Rule, value: float | None, reference: float | None) -> str:
    """The severity a firing rule's signal carries. Latency alone, with nothing failing, is
    never critical (never a P1): "high" (P2) when the value is at least twice its reference
    and at least LATENCY_HIGH_MS, "warning" (P3) below that, and never above the rule's own
    severity."""
    if rule.metric not in LATENCY_METRICS:
        return rule.severity
    big = (
        value is not None
        and reference is not None
        and reference > 0
        and value >= max(2 * reference, LATENCY_HIGH_MS)
    )
    by_size = "high" if big else "warning"
    mine = rule.severity if rule.severity in SEVERITIES else "high"
    return min(by_size, mine, key=SEVERITIES.index)


def default_rules() -> list[Rule]:
    """Rules every route gets without configuration. The absolute ones (5xx-rate,
    p95-above-bound, auth-failure-share, no-healthy-target) need no history and work from a
    route's first minute; the relative ones (p95-vs-baseline, auth-failure-spike,
    rate-limit-surge, traffic-drop) switch on once the route (or the route named by its
    `baseline_from`) has enough stored minutes. docs/configuration.md lists the numbers."""
    return [
        Rule(
            name="5xx-rate",
            metric=Metric.error_rate,
            condition=Condition.above,
            threshold=0.05,
            for_seconds=3,
            min_requests=20,
            min_events=3,  # a rare single 500 is not an incident
            severity="critical",
            description="more than 5 % of calls fail with 5xx or a gateway error",
        ),
        Rule(
            name="p95-above-bound",
            metric=Metric.p95,
            condition=Condition.above,
            threshold=1000.0,
            for_seconds=20,
            min_requests=100,  # the p95 of 100 calls rests on its 5 slowest
            severity="high",
            description="p95 latency above 1 s",
        ),
        Rule(
            name="p95-vs-baseline",
            metric=Metric.p95,
            condition=Condition.baseline_ratio,
            threshold=2.0,
            floor=100.0,
            for_seconds=20,
            min_requests=200,
            severity="high",
            description="p95 latency above twice its baseline (and above 100 ms)",
        ),
        Rule(
            name="no-healthy-target",
            metric=Metric.healthy_targets,
            condition=Condition.below,
            threshold=1,
            clear_ratio=1.0,
            for_seconds=0,
            min_requests=0,
            severity="critical",
            description="every target of the route's upstream is down",
        ),
        Rule(
            name="auth-failure-share",
            metric=Metric.auth_failure_share,
            condition=Condition.above,
            threshold=0.5,
            for_seconds=10,
            min_requests=40,
            min_events=30,
            severity="high",
            category=SECURITY,
            description="more than half of the calls rejected with 401/403 "
            "(credential stuffing or a broken client credential)",
        ),
        Rule(
            name="auth-failure-spike",
            metric=Metric.auth_failures,
            condition=Condition.zscore,
            threshold=6.0,
            for_seconds=10,
            min_requests=20,
            min_events=20,
            severity="warning",
            category=SECURITY,
            description="401/403 rate far above its usual level",
        ),
        Rule(
            name="rate-limit-surge",
            metric=Metric.rate_limited,
            condition=Condition.zscore,
            threshold=6.0,
            for_seconds=10,
            min_requests=20,
            min_events=20,
            severity="warning",
            description="429 rate far above its usual level",
        ),
        Rule(
            name="traffic-drop",
            metric=Metric.requests,
            condition=Condition.drop_to_zero,
            threshold=0,
            for_seconds=30,
            min_requests=20,
            severity="high",
            description="traffic fell to zero on a route that had traffic",
        ),
    ]


@dataclass(frozen=True, slots=True)
class RouteOverride:
    """Per-route changes to the rules (``detection.routes.<route>`` in the configuration)."""

    thresholds: dict[str, float] = field(default_factory=dict)  # rule name -> threshold
    min_requests: dict[str, int] = field(default_factory=dict)  # rule name -> min_requests
    min_events: dict[str, int] = field(default_factory=dict)  # rule name -> min_events
    disabled: frozenset[str] = frozenset()  # rule names off on this route
    baseline_from: str | None = None  # take baselines from this route's history


def for_route(rule: Rule, override: RouteOverride | None) -> Rule | None:
    """`rule` as it applies on a route with `override`; None when it is off there."""
    if override is None:
        return rule
    if rule.name in override.disabled:
        return None
    changes: dict[str, float | int] = {}
    if rule.name in override.thresholds:
        changes["threshold"] = override.thresholds[rule.name]
    if rule.name in override.min_requests:
        changes["min_requests"] = override.min_requests[rule.name]
    if rule.name in override.min_events:
        changes["min_events"] = override.min_events[rule.name]
    return replace(rule, **changes) if changes else rule  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a firing rule tells people: the numbers, the window, where it fails."""

    rule: str
    route: str
    metric: str
    value: float | None
    reference: float | None
    reason: str
    window_start: float
    window_end: float
    requests: int
    top_paths: tuple[tuple[str, int], ...] = ()
    top_errors: tuple[tuple[str, int], ...] = ()
    sample_request_ids: tuple[str, ...] = ()
    extra: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        value = "n/a" if self.value is None else _fmt(self.metric, self.value)
        return f"{self.route}: {self.metric} {value} ({self.reason}) over {self.requests} calls"


def evidence(rule: Rule, stats: WindowStats, verdict: Verdict) -> Evidence:
    return Evidence(
        rule=rule.name,
        route=stats.route,
        metric=rule.metric.value,
        value=verdict.value,
        reference=verdict.reference,
        reason=verdict.reason,
        window_start=stats.start,
        window_end=stats.end,
        requests=stats.requests,
        top_paths=stats.top_paths,
        top_errors=stats.top_errors,
        sample_request_ids=stats.sample_request_ids,
    )


def _fmt(metric: str, value: float) -> str:
    if metric in ("error_rate", "5xx", "4xx"):
        return f"{value * 100:.1f} %"
    if metric in ("p50", "p95", "p99"):
        return f"{value:.0f} ms"
    if math.isfinite(value) and value != int(value):
        return f"{value:.2f}"
    return f"{value:g}"
