"""Pure decisions of reviews: impact window, blast radius, lead times, lifecycle, export,
runbook matching and safe Markdown."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hypercare.errors import InvalidTransition
from hypercare.review import rules
from hypercare.review.rules import Call, ReviewState

T0 = 1_800_000_000.0


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, UTC)


def test_impact_window_starts_with_the_run_that_reaches_the_first_signal() -> None:
    # a stray failure an hour before, then the incident's run from +3590 s to +3900 s
    failures = [T0, T0 + 3590, T0 + 3600, T0 + 3700, T0 + 3900]
    window = rules.impact_window(failures, anchor=T0 + 3650, until=T0 + 4000, gap=300)
    assert window == (T0 + 3590, T0 + 3900)


def test_impact_window_ignores_failures_after_resolution_and_none_without_failures() -> None:
    failures = [T0 + 10, T0 + 20, T0 + 5000]
    assert rules.impact_window(failures, anchor=T0, until=T0 + 100, gap=60) == (T0 + 10, T0 + 20)
    assert rules.impact_window([], anchor=T0, until=T0 + 100, gap=60) is None
    # every failure long before the incident: no window
    assert rules.impact_window([T0], anchor=T0 + 5000, until=T0 + 6000, gap=60) is None


def test_a_late_run_after_the_anchor_still_counts() -> None:
    failures = [T0 + 600, T0 + 610]
    assert rules.impact_window(failures, anchor=T0, until=T0 + 700, gap=60) == (T0 + 600, T0 + 610)


def test_blast_radius_counts_failed_calls_by_consumer_route_and_status() -> None:
    calls = [
        Call(T0 + 1, "pay", "acme", 503, "timeout"),
        Call(T0 + 2, "pay", "acme", 500, ""),
        Call(T0 + 3, "pay", "globex", 502, ""),
        Call(T0 + 4, "orders", "", 200, "reset"),  # upstream error without a 5xx
        Call(T0 + 5, "pay", "acme", 404, ""),  # a client error is no failure
        Call(T0 + 99, "pay", "acme", 500, ""),  # outside the window
    ]
    radius = rules.blast_radius(rules.tally(calls), (T0, T0 + 10))
    assert radius.failed_calls == 4
    assert radius.consumers == [("acme", 2), ("anonymous", 1), ("globex", 1)]
    assert radius.consumer_count == 3
    assert radius.routes == [("pay", 3), ("orders", 1)]
    assert dict(radius.statuses) == {"timeout": 1, "500": 1, "502": 1, "reset": 1}


def test_lead_times_say_who_saw_it_first() -> None:
    lead = rules.lead_times(first_failure=T0, first_signal=T0 + 45, first_user_report=T0 + 300)
    assert lead["failure_to_signal_seconds"] == 45
    assert lead["failure_to_user_report_seconds"] == 300
    assert lead["signal_ahead_of_users_seconds"] == 255
    none = rules.lead_times(first_failure=None, first_signal=T0, first_user_report=None)
    assert none["failure_to_signal_seconds"] is None


def _facts() -> dict[str, object]:
    issue = rules.IssueFacts(
        id=7,
        title="Payments failing",
        priority="P1",
        component="payments",
        impact_started_at=None,
        detected_at=at(60),
        acknowledged_at=at(120),
        mitigated_at=at(400),
        resolved_at=at(600),
    )
    signals = [
        rules.SignalFacts(2, "user", "widget", at(200), "checkout broken", None, None),
        rules.SignalFacts(1, "system", "gateway", at(50), "error rate", "pay", "error-rate"),
    ]
    calls = [
        Call(T0 + s, "pay", "acme" if s % 2 else "globex", 503, "") for s in range(10, 500, 10)
    ]
    events = [
        rules.EventFacts(at(60), "hypercare", "created", "Issue opened as P1"),
        rules.EventFacts(at(61), "ann", "field", "Workaround changed"),
        rules.EventFacts(at(600), "ann", "status", "mitigated → resolved"),
    ]
    return rules.draft_facts(
        issue=issue,
        signals=signals,
        events=events,
        failures=rules.tally(calls),
        routes=["pay"],
        gap=300,
        scanned_blocks=3,
        complete=True,
    )


def test_draft_facts_from_plain_data() -> None:
    facts = _facts()
    impact = facts["impact"]
    assert isinstance(impact, dict)
    assert impact["first_failure_at"] == at(10).isoformat()
    assert impact["last_failure_at"] == at(490).isoformat()
    radius = facts["blast_radius"]
    assert isinstance(radius, dict)
    assert radius["failed_calls"] == 49
    assert radius["consumer_count"] == 1  # every call's second is even: all globex
    lead = facts["lead_times"]
    assert isinstance(lead, dict)
    assert lead["failure_to_signal_seconds"] == 40
    assert lead["failure_to_user_report_seconds"] == 190
    mttx = facts["mttx"]
    assert isinstance(mttx, dict)
    # impact starts at the first failing call: detected 50 s later, resolved 590 s later
    assert mttx["mttd_seconds"] == 50
    assert mttx["mtta_seconds"] == 60
    assert mttx["mttr_seconds"] == 590
    kinds = [e["kind"] for e in facts["timeline"]]  # type: ignore[attr-defined]
    assert kinds == ["created", "status"]  # a field edit is not an important event
    assert [s["id"] for s in facts["signals"]] == [1, 2]  # type: ignore[attr-defined]
    assert facts["user_reports"] == 1


def test_lifecycle_moves_and_publishing_needs_a_root_cause() -> None:
    rules.check_transition(ReviewState.draft, ReviewState.in_review, missing=[])
    with pytest.raises(InvalidTransition, match="from draft to published"):
        rules.check_transition(ReviewState.draft, ReviewState.published, missing=[])
    with pytest.raises(InvalidTransition, match="write root cause"):
        rules.check_transition(ReviewState.in_review, ReviewState.published, missing=["root cause"])
    rules.check_transition(ReviewState.in_review, ReviewState.published, missing=[])
    assert rules.allowed(ReviewState.published) == [ReviewState.in_review]


def test_markdown_export_has_every_section() -> None:
    review = {
        "id": 1,
        "issue_id": 7,
        "issue_priority": "P1",
        "state": "draft",
        "title": "Payments failing",
        "summary": "",
        "root_cause": "Provider | timeout",
        "contributing_factors": "",
        "went_well": "",
        "went_badly": "",
        "facts": _facts(),
        "action_items": [
            {"issue_id": 9, "title": "Add retries", "priority": "P4", "status": "new",
             "assignee": None},
        ],
    }  # fmt: skip
    md = rules.to_markdown(review)
    assert md.startswith("# Post-incident review: Payments failing\n")
    for heading in ("## Impact", "## Detection", "## Root cause", "## Action items", "## Timeline"):
        assert heading in md
    assert "- Failed calls: 49 on 1 route(s), 1 consumer(s)" in md
    assert "| globex | 49 |" in md
    assert "- [ ] #9 Add retries (P4, unassigned)" in md
    assert "Provider | timeout" in md


def test_runbooks_match_by_component_route_or_rule() -> None:
    books = [
        rules.RunbookFacts("pay", ["payments"], [], []),
        rules.RunbookFacts("route", [], ["pay", "orders"], []),
        rules.RunbookFacts("rule", [], [], ["error-rate"]),
        rules.RunbookFacts("other", ["search"], ["search"], ["latency"]),
    ]
    found = rules.match_runbooks(books, component="payments", routes=["pay"], rules=["error-rate"])
    assert found == {
        "pay": ["component payments"],
        "route": ["route pay"],
        "rule": ["rule error-rate"],
    }


def test_markdown_is_rendered_with_html_escaped_and_script_links_dropped() -> None:
    html = rules.render_markdown(
        "# Steps\n<script>alert(1)</script>\n\n[x](javascript:alert(1)) **bold**\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n"
    )
    assert "<h1>Steps</h1>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="javascript' not in html
    assert "<strong>bold</strong>" in html
    assert "<table>" in html


def test_failures_are_tallied_per_second_not_kept_per_call() -> None:
    calls = [Call(T0 + i / 10, "pay", "", 503, "") for i in range(10)]
    calls.append(Call(T0 + 0.5, "pay", "", 200, ""))
    assert rules.tally(calls) == {rules.Bucket(int(T0), "pay", "anonymous", "503"): 10}
