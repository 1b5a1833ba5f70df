"""Pure launch decisions: state, SLO arithmetic, burn-rate alerts, exit criteria, MTTx."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hypercare.config import parse_config
from hypercare.launch import rules
from hypercare.launch.config import Criterion, LaunchConfig
from hypercare.launch.rules import BURN_POLICY, Facts, IssueFact, LaunchState, Point, SloStatus

NOW = datetime(2026, 1, 20, 12, 0, tzinfo=UTC)
T = int(NOW.timestamp())


def launch(**kw: object) -> LaunchConfig:
    base: dict[str, object] = {"name": "checkout-v2", "start": "2026-01-05T09:00:00Z"}
    base.update(kw)
    return LaunchConfig.model_validate(base)


def issue(
    i: int, priority: str, status: str = "new", age: timedelta = timedelta(hours=1)
) -> IssueFact:
    return IssueFact(i, f"issue {i}", priority, status, NOW - age, "payment-status", "payments")


def test_state_follows_the_calendar_until_someone_sets_one() -> None:
    start, end = NOW, NOW + timedelta(days=14)
    assert (
        rules.effective_state(None, start, end, NOW - timedelta(seconds=1)) is LaunchState.planned
    )
    assert rules.effective_state(None, start, end, NOW) is LaunchState.active
    assert rules.effective_state(None, start, end, end) is LaunchState.exit_review
    assert rules.effective_state("exited", start, end, NOW) is LaunchState.exited


def test_transitions() -> None:
    assert (
        rules.transition_error(LaunchState.active, LaunchState.exit_review, new_end=None, start=NOW)
        is None
    )
    assert "cannot become" in (
        rules.transition_error(LaunchState.exited, LaunchState.active, new_end=None, start=NOW)
        or ""
    )
    why = rules.transition_error(LaunchState.active, LaunchState.extended, new_end=None, start=NOW)
    assert why is not None and "new end" in why
    assert (
        rules.transition_error(
            LaunchState.active, LaunchState.extended, new_end=NOW + timedelta(days=7), start=NOW
        )
        is None
    )


def test_burn_rate_and_budget() -> None:
    assert rules.burn_rate(total=1000, bad=20, target=99.0) == 2.0
    assert rules.burn_rate(total=0, bad=0, target=99.0) == 0.0
    s = SloStatus("a", "availability", 99.0, 3600, 1000, 5)
    assert s.sli == 99.5 and s.met and s.budget_remaining == 0.5
    over = SloStatus("a", "availability", 99.0, 3600, 1000, 20)
    assert not over.met and over.budget_remaining == -1.0
    assert SloStatus("a", "availability", 99.0, 3600, 0, 0).met


def minutes(n: int, total: int, bad: int, end: int = T) -> list[Point]:
    return [Point(end - 60 * (i + 1), 60, total, bad) for i in range(n)]


def test_fast_burn_pages_when_both_windows_burn() -> None:
    # 20 % errors against a 99.9 % target: 200× in both the 1 h and the 5 m window
    alert = rules.burn_alert(minutes(60, 100, 20), target=99.9, now=T)
    assert alert is not None and alert.window is BURN_POLICY[0]
    assert alert.window.action == "page" and alert.long_rate == 200.0
    ev = alert.evidence()
    assert ev["long_calls"] == 6000 and ev["short_bad"] == 100


def test_a_burn_that_stopped_does_not_alert() -> None:
    # the hour before last burned 20×, the last hour is clean: the short windows reset both
    # pages; what stays is the slow-burn ticket (the 3 d and 6 h windows still burn 10×)
    old = minutes(60, 100, 20, end=T - 3600)
    clean = minutes(60, 100, 0)
    alert = rules.burn_alert([*old, *clean], target=99.0, now=T)
    assert alert is not None and alert.window.action == "ticket"
    # with a long clean history the slow burn is diluted under 1× too
    history = [Point(T - 7200 - 3600 * (i + 1), 3600, 100_000, 0) for i in range(60)]
    assert rules.burn_alert([*history, *old, *clean], target=99.0, now=T) is None


def test_slow_burn_tickets() -> None:
    # 0.2 % errors on a 99.9 % target for three days: 2× — a ticket, not a page
    pts = [Point(T - 3600 * (i + 1), 3600, 1000, 2) for i in range(72)]
    alert = rules.burn_alert(pts, target=99.9, now=T)
    assert (
        alert is not None and alert.window.action == "ticket" and alert.window.severity == "warning"
    )


def test_too_few_calls_do_not_alert() -> None:
    assert rules.burn_alert(minutes(5, 1, 1), target=99.9, now=T) is None


def test_budget_series_accumulates() -> None:
    pts = [Point(T, 60, 100, 0), Point(T + 60, 60, 100, 1)]
    series = rules.budget_series(pts, target=99.0, start=T, step=60)
    assert series == [(T + 60, 1.0), (T + 120, 0.5)]


def crit(data: dict[str, object]) -> Criterion:
    return Criterion.model_validate(data)


def test_no_open_lists_the_issues() -> None:
    facts = Facts(now=NOW, issues=[issue(1, "P1"), issue(2, "P2", "resolved"), issue(3, "P3")])
    r = rules.evaluate(crit({"no_open": ["P1", "P2"]}), facts)
    assert not r.passed and r.links == ("/issues/1",) and "#1" in r.summary
    facts.issues[0] = issue(1, "P1", "verified")
    assert rules.evaluate(crit({"no_open": ["P1", "P2"]}), facts).passed


def test_no_new_p1_for_72h() -> None:
    c = crit({"no_new": {"priority": ["P1"], "for": "72h"}})
    assert not rules.evaluate(
        c, Facts(now=NOW, issues=[issue(1, "P1", "closed", timedelta(hours=71))])
    ).passed
    r = rules.evaluate(c, Facts(now=NOW, issues=[issue(1, "P1", "closed", timedelta(hours=73))]))
    assert r.passed and r.evidence["last_created_at"] is not None


def test_slo_met_uses_the_statuses_of_its_window() -> None:
    c = crit({"slo_met": {"for": "48h"}})
    good = SloStatus("a", "availability", 99.0, 172800, 1000, 1)
    bad = SloStatus("b", "latency", 99.0, 172800, 1000, 50)
    r = rules.evaluate(c, Facts(now=NOW, issues=[], slo_over={172800: {"a": good, "b": bad}}))
    assert not r.passed and "b (95.0% < 99.0%)" in r.summary
    assert rules.evaluate(c, Facts(now=NOW, issues=[], slo_over={172800: {"a": good}})).passed


def test_tickets_per_day_and_trend() -> None:
    c = crit({"tickets_per_day": {"max": 3, "days": 4}})
    falling = [issue(i, "P3", age=timedelta(days=3, hours=1)) for i in range(5)]
    falling += [issue(10, "P3", age=timedelta(hours=2))]
    r = rules.evaluate(c, Facts(now=NOW, issues=falling))
    assert r.passed and r.evidence["daily"] == [5, 0, 0, 1]
    rising = [issue(i, "P3", age=timedelta(hours=i + 1)) for i in range(3)]
    r = rules.evaluate(c, Facts(now=NOW, issues=rising))
    assert not r.passed and r.evidence["slope_per_day"] > 0


def test_nps_needs_responses_and_a_score() -> None:
    c = crit({"nps": {"min": 20, "window": "7d", "min_responses": 3}})
    scores = [("nps", NOW - timedelta(days=1), s) for s in (10, 10, 9, 3)]
    r = rules.evaluate(c, Facts(now=NOW, issues=[], scores=scores))
    assert r.passed and r.evidence["score"] == 50.0
    assert not rules.evaluate(c, Facts(now=NOW, issues=[], scores=scores[:2])).passed
    assert not rules.evaluate(c, Facts(now=NOW, issues=[])).passed


def test_metric_bound() -> None:
    c = crit(
        {"metric": {"route": "payment-status", "metric": "error_rate", "max": 0.01, "window": "1h"}}
    )
    key = ("payment-status", "error_rate", 3600)
    assert rules.evaluate(c, Facts(now=NOW, issues=[], metrics={key: 0.001})).passed
    assert not rules.evaluate(c, Facts(now=NOW, issues=[], metrics={key: 0.2})).passed
    assert not rules.evaluate(c, Facts(now=NOW, issues=[], metrics={key: None})).passed


def test_scorecard_text() -> None:
    lc = launch(exit_criteria=[{"no_open": ["P1", "P2"]}])
    card = rules.scorecard(lc, "active", Facts(now=NOW, issues=[issue(4, "P2")]))
    assert not card.passed
    text = rules.render_text(card)
    assert "NOT READY" in text and "[FAIL] no open P1/P2 issue: 1 open: #4" in text
    assert card.as_dict()["results"][0]["evidence"]["open"][0]["id"] == 4


def test_percentiles() -> None:
    assert rules.percentile([], 0.5) is None
    assert rules.percentile([1, 2, 3, 4], 0.5) == 2.5
    assert rules.percentile([10.0] * 9 + [100.0], 0.9) == pytest.approx(19.0)
    s = rules.time_stats([None, 60.0, 120.0])
    assert (s.count, s.median) == (2, 90.0)


def test_scope_expands_components_and_routes() -> None:
    comps = {"payment-status": "payments", "payment-create": "payments", "catalog": "catalog"}
    scope = rules.scope_of(launch(components=["payments"]), NOW + timedelta(days=1), comps)
    assert scope.routes == {"payment-status", "payment-create"}
    assert scope.holds(at=NOW, route=None, component="payments")
    assert not scope.holds(at=NOW, route="catalog", component="catalog")
    assert not scope.holds(at=NOW + timedelta(days=2), route="payment-status", component=None)


def test_the_minimal_config_of_the_issue_parses() -> None:
    cfg = parse_config(
        "launches:\n"
        "  - name: checkout-v2\n"
        "    start: 2026-01-05T09:00:00Z\n"
        "    routes: [payment-status]\n"
        "    exit_criteria:\n"
        "      - no_open: [P1, P2]\n"
    )
    (lc,) = cfg.launches
    assert lc.planned_end == lc.start + timedelta(days=28)
    assert lc.exit_criteria[0].kind == "no_open"


def test_tickets_trend_counts_only_the_launch_days() -> None:
    c = crit({"tickets_per_day": {"max": 3, "days": 7}})
    first_day = [issue(1, "P3", age=timedelta(hours=2))]
    r = rules.evaluate(c, Facts(now=NOW, issues=first_day, start=NOW - timedelta(hours=5)))
    assert r.passed and r.evidence["daily"] == [1] and "too early" in r.summary
    r = rules.evaluate(c, Facts(now=NOW, issues=first_day, start=NOW - timedelta(days=2)))
    assert not r.passed and r.evidence["daily"] == [0, 1]
