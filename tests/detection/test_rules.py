import pytest

from hypercare.detection.rules import (
    Baseline,
    Condition,
    Metric,
    Phase,
    Rule,
    RuleState,
    WindowStats,
    default_rules,
    evaluate,
    evidence,
    metric_value,
    robust_zscore,
    step,
)


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
    state, event = step(rule, RuleState(), bad, window_start=100.0, now=102.0)
    assert state.phase is Phase.pending
    assert event is None
    state, event = step(rule, state, bad, window_start=102.0, now=103.5)
    assert event is None
    state, event = step(rule, state, bad, window_start=104.0, now=106.0)
    assert state.phase is Phase.firing
    assert event is not None
    assert (event.kind, event.impact_started_at) == ("fire", 100.0)
    # recovery must last clear_for before resolving; a new breach restarts the wait
    state, event = step(rule, state, good, window_start=106.0, now=108.0)
    assert event is None
    state, event = step(rule, state, bad, window_start=108.0, now=110.0)
    assert state.recovered_since is None
    state, _ = step(rule, state, good, window_start=110.0, now=112.0)
    state, event = step(rule, state, good, window_start=112.0, now=116.0)
    assert event is None
    state, event = step(rule, state, good, window_start=116.0, now=118.0)
    assert event is not None
    assert event.kind == "resolve"
    assert state.phase is Phase.ok


def test_a_blip_shorter_than_for_never_fires() -> None:
    rule = Rule("5xx", Metric.error_rate, Condition.above, 0.05, for_seconds=10)
    bad = evaluate(rule, window(requests=100, status_5xx=50))
    good = evaluate(rule, window(requests=100))
    state, _ = step(rule, RuleState(), bad, window_start=0.0, now=2.0)
    state, event = step(rule, state, good, window_start=2.0, now=4.0)
    assert event is None
    assert state == RuleState()


def test_default_rules_cover_the_promised_failure_modes() -> None:
    names = {r.name for r in default_rules()}
    assert names == {
        "5xx-rate",
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
