"""The demo runs as a launch: SLOs on the payment routes, exit criteria the incident breaks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypercare.config import parse_config
from hypercare.demo.config import demo_yaml
from hypercare.demo.run import demo_extra
from hypercare.launch import rules
from hypercare.launch.rules import Facts, IssueFact


def test_the_demo_declares_its_launch() -> None:
    now = datetime(2026, 12, 7, 10, 0, 30, tzinfo=UTC)
    cfg = parse_config(
        demo_yaml({"catalog": 1, "orders": 2, "payments": 3}, demo_extra("http://x", now=now)),
        "<demo>",
    )
    (launch,) = cfg.launches
    assert launch.name == "shop-launch" and launch.start == datetime(2026, 12, 7, 9, 55, tzinfo=UTC)
    assert {s.route or s.component for s in launch.slos} == {"payment-status", "orders"}
    assert set(launch.roster) == {
        "triage",
        "resolution",
        "communication",
        "escalation",
        "exit_approval",
    }
    kinds = [c.kind for c in launch.exit_criteria]
    assert kinds[:3] == ["no_open", "no_new", "metric"]

    # the incident's P1 fails no_open; once resolved it passes (no_new keeps the 72 h watch)
    p1 = IssueFact(
        1, "payment status 503", "P1", "investigating", now, "payment-status", "payments"
    )
    facts = Facts(now=now + timedelta(minutes=5), issues=[p1])
    card = rules.scorecard(launch, "active", facts)
    assert [r.passed for r in card.results][:2] == [False, False]
    facts.issues = [IssueFact(1, p1.title, "P1", "verified", now, p1.route, p1.component)]
    assert rules.scorecard(launch, "active", facts).results[0].passed
