"""The status page's pure decisions: classification, hysteresis, overrides, uptime,
templates, the rate limit."""

from __future__ import annotations

import pytest

from hypercare.detection.rules import WindowStats
from hypercare.status.config import ThresholdsConfig
from hypercare.status.rules import (
    ComponentStatus,
    Reading,
    TemplateError,
    TokenBucket,
    Tracked,
    Window,
    check_template,
    classify,
    effective,
    etag_matches,
    indicator,
    reading,
    reminder_due,
    render_template,
    routes_of,
    step,
    uptime_days,
)

T = ThresholdsConfig().to_rules()
S = ComponentStatus


def test_classify_by_error_rate_and_targets() -> None:
    assert classify(Reading(100, 0), T)[0] is S.operational
    assert classify(Reading(100, 5), T)[0] is S.degraded_performance
    assert classify(Reading(100, 20), T)[0] is S.partial_outage
    status, why = classify(Reading(100, 90), T)
    assert status is S.major_outage and "error rate 90%" in why
    # too few requests to judge a rate, but no healthy target is an outage on its own
    assert classify(Reading(3, 3), T)[0] is S.operational
    assert classify(Reading(0, 0, no_healthy_target=True), T)[0] is S.major_outage


def test_classify_latency_against_baseline() -> None:
    slow = Reading(100, 0, p95_ms=400.0, baseline_p95_ms=100.0)
    status, why = classify(slow, T)
    assert status is S.degraded_performance and "4.0×" in why


def test_reading_sums_routes_with_one_failure_classification() -> None:
    a = WindowStats("a", 0, 10, requests=50, status_5xx=10, gateway_errors=5, p95=30.0)
    b = WindowStats("b", 0, 10, requests=50, healthy_targets=0, p95=90.0)
    r = reading([a, b], {"b": 30.0})
    assert (r.requests, r.failed) == (100, 15)
    assert r.no_healthy_target
    assert (r.p95_ms, r.baseline_p95_ms) == (90.0, 30.0)


def test_hysteresis_raises_fast_and_clears_slowly() -> None:
    t = Tracked(S.operational, 0)
    t = step(t, S.major_outage, 10, raise_after=2, clear_after=30)
    assert t.status is S.operational and t.pending is S.major_outage
    t = step(t, S.major_outage, 12, raise_after=2, clear_after=30)
    assert t.status is S.major_outage and t.since == 12
    # one good second does not clear it, nor does a flap back
    t = step(t, S.operational, 13, 2, 30)
    t = step(t, S.major_outage, 14, 2, 30)
    assert t.status is S.major_outage and t.pending is None
    t = step(t, S.operational, 15, 2, 30)
    t = step(t, S.operational, 44, 2, 30)
    assert t.status is S.major_outage
    t = step(t, S.operational, 45, 2, 30)
    assert t.status is S.operational


def test_hysteresis_does_not_restart_while_a_fault_grows() -> None:
    # the error rate climbs through the levels as failed calls fill the window
    t = Tracked(S.operational, 0)
    t = step(t, S.degraded_performance, 10, raise_after=2, clear_after=30)
    t = step(t, S.partial_outage, 11, 2, 30)
    assert t.status is S.operational and (t.pending, t.pending_since) == (S.partial_outage, 11)
    t = step(t, S.major_outage, 11.5, 2, 30)
    # bad for 2 s: the state every reading since 10 reached is taken, not the last one
    t = step(t, S.major_outage, 12, 2, 30)
    assert (t.status, t.since) == (S.degraded_performance, 12)
    assert (t.pending, t.pending_since) == (S.major_outage, 11.5)
    t = step(t, S.major_outage, 13, 2, 30)
    assert t.status is S.partial_outage  # partial since 11
    t = step(t, S.major_outage, 13.5, 2, 30)
    assert (t.status, t.pending) == (S.major_outage, None)
    # a lighter reading in between: only what held throughout counts
    t = Tracked(S.operational, 0)
    t = step(t, S.major_outage, 20, 2, 30)
    t = step(t, S.degraded_performance, 21, 2, 30)
    t = step(t, S.major_outage, 21.5, 2, 30)
    t = step(t, S.major_outage, 22, 2, 30)
    assert t.status is S.degraded_performance
    t = step(t, S.major_outage, 23, 2, 30)
    assert t.status is S.degraded_performance
    t = step(t, S.major_outage, 23.5, 2, 30)
    assert t.status is S.major_outage
    # a good reading restarts the wait
    t = Tracked(S.operational, 0)
    t = step(t, S.partial_outage, 30, 2, 30)
    t = step(t, S.operational, 31, 2, 30)
    t = step(t, S.partial_outage, 32, 2, 30)
    t = step(t, S.partial_outage, 33, 2, 30)
    assert t.status is S.operational
    t = step(t, S.partial_outage, 34, 2, 30)
    assert t.status is S.partial_outage


def test_override_wins_then_maintenance_then_traffic() -> None:
    o = [Window(S.partial_outage, 0, 100)]
    m = [Window(S.under_maintenance, 50, 200)]
    assert effective(S.major_outage, 10, o, m) == (S.partial_outage, "override")
    assert effective(S.major_outage, 150, o, m) == (S.under_maintenance, "maintenance")
    assert effective(S.major_outage, 250, o, m) == (S.major_outage, "traffic")
    assert effective(S.operational, 5, [Window(S.major_outage, 0, None)], []) == (
        S.major_outage,
        "override",
    )


def test_routes_by_name_and_tags() -> None:
    known = {"pay": {"component": "payments"}, "refund": {"component": "payments"}, "x": {}}
    assert routes_of(["x"], {"component": "payments"}, known) == ["x", "pay", "refund"]
    assert routes_of(["payment-status"], {}, {}) == ["payment-status"]


def test_indicator_from_components_and_incidents() -> None:
    assert indicator([S.operational]) == ("none", "All Systems Operational")
    assert indicator([S.operational, S.partial_outage]) == ("major", "Partial System Outage")
    assert indicator([S.major_outage]) == ("critical", "Major System Outage")
    assert indicator([S.operational], ["minor"]) == ("minor", "Minor Service Outage")
    assert indicator([S.under_maintenance])[1] == "Service Under Maintenance"


def test_uptime_per_day() -> None:
    day0 = 1_700_006_400 - 1_700_006_400 % 86400
    rows = [(day0 + 60, 100, 1), (day0 + 3600, 100, 1), (day0 + 86400 + 5, 10, 10)]
    days = uptime_days(rows, day0, 3)
    assert [d.requests for d in days] == [200, 10, 0]
    assert days[0].ratio == pytest.approx(0.99)
    assert days[1].ratio == 0.0 and days[2].ratio is None


def test_template_errors_name_the_line() -> None:
    with pytest.raises(TemplateError) as err:
        check_template("fine\n{% if component %}\nno end")
    assert err.value.line is not None and "line" in str(err.value)
    with pytest.raises(TemplateError) as err:
        check_template("Hello\n{{ componnent }}")
    assert err.value.line == 2 and "componnent" in str(err.value)
    # loop variables are not unknown
    check_template("{% for c in components %}{{ c }}{% endfor %}")


def test_template_sandbox_and_render() -> None:
    assert render_template("{{ component }} down", {"component": "Pay"}) == "Pay down"
    # a missing variable renders empty; the sandbox refuses unsafe attribute access
    assert render_template("[{{ workaround }}]", {}) == "[]"
    with pytest.raises(TemplateError):
        render_template("{{ component.__class__.__mro__ }}", {"component": "x"})


def test_etag_and_rate_limit() -> None:
    assert etag_matches('W/"a", "b"', '"b"') and etag_matches("*", '"x"')
    assert not etag_matches(None, '"x"')
    bucket = TokenBucket(per_minute=2)
    assert bucket.allow("ip", 0) is None and bucket.allow("ip", 0) is None
    wait = bucket.allow("ip", 0)
    assert wait is not None and wait > 0
    assert bucket.allow("other", 0) is None
    assert bucket.allow("ip", 31) is None


def test_reminder_due_per_priority() -> None:
    reminders = {"P1": 1800.0}
    assert reminder_due(0, "P1", reminders, 1800)
    assert not reminder_due(0, "P1", reminders, 1799)
    assert not reminder_due(0, "P3", reminders, 10**9)
