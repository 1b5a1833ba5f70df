import pytest

from hypercare.detection.rules import (
    Baseline,
    Condition,
    Metric,
    Phase,
    RouteOverride,
    Rule,
    RuleState,
    WindowStats,
    default_rules,
    evaluate,
    evidence,
    for_route,
    metric_value,
    robust_zscore,
    severity_of,
    step,
)


def rule(name: str) -> Rule:
    return next(r for r in default_rules() if r.name == name)


def window(**kw: object) -> WindowStats:
    base: dict[str, object] = {"route": "payment-status", "start": 0.0, "end": 30.0}
    base.update(kw)
    return WindowStats(**base)  # type: ignore[arg-type]


def test_metric_values() -> None:
    w = window(
        requests=300,
        status_5xx=30,
        status_4xx=15,
        gateway_errors=6,
        auth_failures=9,
        rate_limited=3,
        upstream_errors=12,
        p95=250.0,
        healthy_targets=2,
    )
    assert metric_value(w, Metric.rps) == 10
    assert metric_value(w, Metric.status_5xx) == 0.1
    assert metric_value(w, Metric.status_4xx) == 0.05
    assert metric_value(w, Metric.error_rate) == 0.12
    assert metric_value(w, Metric.auth_failures) == 0.3
    assert metric_value(w, Metric.rate_limited) == 0.1
    assert metric_value(w, Metric.upstream_errors) == 0.4
    assert metric_value(w, Metric.p95) == 250.0
    assert metric_value(w, Metric.healthy_targets) == 2
    assert metric_value(window(), Metric.error_rate) is None
    assert metric_value(window(), Metric.p99) is None


RATE = Rule("5xx", Metric.error_rate, Condition.above, 0.05, min_requests=20)


def test_threshold_with_minimum_traffic_and_hysteresis_band() -> None:
    assert evaluate(RATE, window(requests=100, status_5xx=10)).breached
    quiet = evaluate(RATE, window(requests=10, status_5xx=10))
    assert not quiet.breached
    assert "fewer than 20" in quiet.reason
    # 4.5 %: no longer breaching, but not yet recovered (band ends at 0.05 × 0.8 = 4 %)
    between = evaluate(RATE, window(requests=1000, status_5xx=45))
    assert (between.breached, between.recovered) == (False, False)
    assert evaluate(RATE, window(requests=1000, status_5xx=30)).recovered


def test_below_condition_for_healthy_targets() -> None:
    rule = next(r for r in default_rules() if r.name == "no-healthy-target")
    assert evaluate(rule, window(healthy_targets=0)).breached
    ok = evaluate(rule, window(healthy_targets=1))
    assert not ok.breached
    assert ok.recovered
    assert not evaluate(rule, window(healthy_targets=None)).breached


def test_baseline_ratio_needs_a_baseline_and_respects_the_floor() -> None:
    rule = Rule("p95", Metric.p95, Condition.baseline_ratio, 2.0, floor=100.0)
    w = window(requests=100, p95=90.0)
    assert not evaluate(rule, w).breached  # no baseline
    assert not evaluate(rule, w, Baseline(value=30.0)).breached  # 3x but under the floor
    slow = evaluate(rule, window(requests=100, p95=400.0), Baseline(value=120.0))
    assert slow.breached
    assert slow.reference == 240.0
    assert "baseline" in slow.reason


def test_zscore_condition() -> None:
    rule = Rule("auth", Metric.auth_failures, Condition.zscore, 6.0)
    history = (0.1, 0.12, 0.09, 0.11, 0.1, 0.13, 0.1)
    assert evaluate(
        rule, window(requests=100, auth_failures=60), Baseline(history=history)
    ).breached
    assert not evaluate(
        rule, window(requests=100, auth_failures=3), Baseline(history=history)
    ).breached
    assert not evaluate(
        rule, window(requests=100, auth_failures=60), Baseline(history=(1.0,))
    ).breached


def test_robust_zscore_handles_flat_history() -> None:
    assert robust_zscore(5.0, [1.0] * 10) == pytest.approx(80.0)
    assert robust_zscore(1.0, [1.0, 2.0]) is None


def test_drop_to_zero_only_for_routes_that_had_traffic() -> None:
    rule = next(r for r in default_rules() if r.name == "traffic-drop")
    assert evaluate(rule, window(requests=0), Baseline(requests_per_second=5.0)).breached
    assert not evaluate(rule, window(requests=0), Baseline(requests_per_second=0.1)).breached
    assert not evaluate(rule, window(requests=0)).breached
    assert not evaluate(rule, window(requests=40), Baseline(requests_per_second=5.0)).breached


def test_state_machine_fires_after_for_duration_and_keeps_impact_start() -> None:
    rule = Rule("5xx", Metric.error_rate, Condition.above, 0.05, for_seconds=4, clear_for_seconds=6)
    bad = evaluate(rule, window(requests=100, status_5xx=50))
    good = evaluate(rule, window(requests=100))
    state, event = step(rule, RuleState(), bad, breach_start=100.0, now=102.0)
    assert state.phase is Phase.pending
    assert event is None
    state, event = step(rule, state, bad, breach_start=102.0, now=103.5)
    assert event is None
    state, event = step(rule, state, bad, breach_start=104.0, now=106.0)
    assert state.phase is Phase.firing
    assert event is not None
    assert (event.kind, event.impact_started_at) == ("fire", 100.0)
    # recovery must last clear_for before resolving; a new breach restarts the wait
    state, event = step(rule, state, good, breach_start=106.0, now=108.0)
    assert event is None
    state, event = step(rule, state, bad, breach_start=108.0, now=110.0)
    assert state.recovered_since is None
    state, _ = step(rule, state, good, breach_start=110.0, now=112.0)
    state, event = step(rule, state, good, breach_start=112.0, now=116.0)
    assert event is None
    state, event = step(rule, state, good, breach_start=116.0, now=118.0)
    assert event is not None
    assert event.kind == "resolve"
    assert state.phase is Phase.ok


def test_a_blip_shorter_than_for_never_fires() -> None:
    rule = Rule("5xx", Metric.error_rate, Condition.above, 0.05, for_seconds=10)
    bad = evaluate(rule, window(requests=100, status_5xx=50))
    good = evaluate(rule, window(requests=100))
    state, _ = step(rule, RuleState(), bad, breach_start=0.0, now=2.0)
    state, event = step(rule, state, good, breach_start=2.0, now=4.0)
    assert event is None
    assert state == RuleState()


def test_default_rules_cover_the_promised_failure_modes() -> None:
    names = {r.name for r in default_rules()}
    assert names == {
        "5xx-rate",
        "p95-above-bound",
        "auth-failure-share",
        "p95-vs-baseline",
        "no-healthy-target",
        "auth-failure-spike",
        "rate-limit-surge",
        "traffic-drop",
    }


def test_evidence_summary_is_human() -> None:
    w = window(
        requests=200, status_5xx=80, top_errors=(("timeout", 50),), sample_request_ids=("r1",)
    )
    ev = evidence(RATE, w, evaluate(RATE, w))
    assert ev.summary() == "payment-status: error_rate 40.0 % (> 0.05) over 200 calls"
    assert ev.sample_request_ids == ("r1",)


def test_for_counts_from_the_first_breaching_second_not_the_window_edge() -> None:
    rule = Rule("p95", Metric.p95, Condition.above, 500.0, for_seconds=10, min_requests=1)
    bad = evaluate(rule, window(requests=100, p95=900.0))
    # the 30 s window breaches for the first time at 130; its bad seconds began at 128
    state, event = step(rule, RuleState(), bad, breach_start=128.0, now=130.0)
    assert event is None
    assert state.breach_since == 128.0
    state, event = step(rule, state, bad, breach_start=132.0, now=132.0)
    assert event is None  # 4 s of breach, not the 30 s of the window
    state, event = step(rule, state, bad, breach_start=138.0, now=138.0)
    assert event is not None
    assert (event.kind, event.impact_started_at, event.at) == ("fire", 128.0, 138.0)


def test_absolute_rules_need_no_history_but_enough_calls() -> None:
    p95 = rule("p95-above-bound")
    assert evaluate(p95, window(requests=150, p95=1400.0)).breached
    assert not evaluate(p95, window(requests=150, p95=700.0)).breached
    # 74 calls are too few for a p95 to mean anything
    assert not evaluate(p95, window(requests=74, p95=5000.0)).breached
    share = rule("auth-failure-share")
    assert share.category == "security"
    assert evaluate(share, window(requests=100, auth_failures=80)).breached
    assert not evaluate(share, window(requests=100, auth_failures=30)).breached
    # a share over the bound from a handful of calls is not a burst
    assert not evaluate(share, window(requests=40, auth_failures=25)).breached
    relative = rule("p95-vs-baseline")
    assert relative.min_requests >= 200
    assert not evaluate(relative, window(requests=199, p95=900.0), Baseline(value=50.0)).breached
    assert evaluate(relative, window(requests=200, p95=900.0), Baseline(value=50.0)).breached


def test_a_single_500_is_not_an_error_rate_incident() -> None:
    rate = rule("5xx-rate")
    assert not evaluate(rate, window(requests=20, status_5xx=2)).breached  # 10 %, 2 calls
    assert evaluate(rate, window(requests=40, status_5xx=3)).breached


def test_latency_alone_is_never_critical_and_scales_with_size() -> None:
    p95 = rule("p95-above-bound")
    assert severity_of(p95, 1300.0, 1000.0) == "warning"
    assert severity_of(p95, 2500.0, 1000.0) == "high"
    loud = Rule("slow", Metric.p99, Condition.above, 100.0, severity="critical")
    assert severity_of(loud, 10_000.0, 100.0) == "high"
    quiet = Rule("slow", Metric.p99, Condition.above, 100.0, severity="info")
    assert severity_of(quiet, 10_000.0, 100.0) == "info"
    assert severity_of(rule("5xx-rate"), 0.2, 0.05) == "critical"
    # the demo's minor blip: 450 ms on a 30 ms baseline is slow, not a P2
    relative = rule("p95-vs-baseline")
    assert severity_of(relative, 480.0, 100.0) == "warning"
    assert severity_of(relative, 1500.0, 100.0) == "high"


def test_route_overrides_change_thresholds_and_switch_rules_off() -> None:
    p95 = rule("p95-above-bound")
    slow = RouteOverride(thresholds={"p95-above-bound": 3000.0}, min_requests={"5xx-rate": 50})
    mine = for_route(p95, slow)
    assert mine is not None and mine.threshold == 3000.0
    assert for_route(p95, None) is p95
    assert for_route(p95, RouteOverride(disabled=frozenset({"p95-above-bound"}))) is None
    rate = for_route(rule("5xx-rate"), slow)
    assert rate is not None and rate.min_requests == 50 and rate.threshold == 0.05
