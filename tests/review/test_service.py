"""Reviews drafted from the store's telemetry, signals and timeline; runbooks, the
knowledge base and its full-text search, on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from hypercare.config import parse_config
from hypercare.errors import Conflict, InvalidInput, InvalidTransition
from hypercare.review import service
from hypercare.review.config import ReviewConfig
from hypercare.review.models import ActionItemCreate, RunbookWrite
from hypercare.review.rules import ReviewState
from hypercare.triage import service as triage
from hypercare.triage.rules import Matrix, Status
from tests.review.helpers import get, incident_calls, ingest, make_incident, ts

ROUTES = [("payment-status", "/payments", "payments"), ("orders", "/orders", "shop")]


@pytest.fixture
def matrix() -> Matrix:
    return Matrix(parse_config("{}").triage)


async def test_draft_states_window_blast_radius_lead_times_and_mttx(
    engine: AsyncEngine, session: AsyncSession, matrix: Matrix
) -> None:
    start = float(int(time.time()) - 4000)
    await ingest(engine, incident_calls(start))
    incident = await make_incident(session, matrix, start=start)
    issue = await get(session, incident.issue_id)
    review = await service.draft_review(
        session=session, issue=issue, config=ReviewConfig(), gateway_routes=ROUTES, actor="t"
    )
    facts = review.facts
    assert facts["routes"] == ["payment-status"]
    assert facts["impact"]["first_failure_at"] == ts(start).isoformat()
    assert facts["impact"]["last_failure_at"] == ts(start + 118).isoformat()
    radius = facts["blast_radius"]
    assert radius["failed_calls"] == 60
    assert {c["consumer"]: c["failed_calls"] for c in radius["consumers"]} == {
        "acme": 40,
        "globex": 20,
    }
    assert radius["routes"] == [{"route": "payment-status", "failed_calls": 60}]
    lead = facts["lead_times"]
    assert lead["failure_to_signal_seconds"] == 30
    assert lead["failure_to_user_report_seconds"] == 90
    assert facts["mttx"]["mttd_seconds"] == 30
    assert facts["mttx"]["mttr_seconds"] == 200
    assert [s["kind"] for s in facts["signals"]] == ["system", "user"]
    assert "status" in {e["kind"] for e in facts["timeline"]}
    assert facts["telemetry"]["complete"] is True

    # drafting again refreshes the draft, never makes a second review
    again = await service.draft_review(
        session=session, issue=issue, config=ReviewConfig(), gateway_routes=ROUTES, actor="t"
    )
    assert again.id == review.id


async def test_scan_bound_marks_the_counts_incomplete(
    engine: AsyncEngine, session: AsyncSession, matrix: Matrix
) -> None:
    start = float(int(time.time()) - 4000)
    calls = incident_calls(start)
    await ingest(engine, calls[: len(calls) // 2])
    await ingest(engine, calls[len(calls) // 2 :])
    incident = await make_incident(session, matrix, start=start)
    issue = await get(session, incident.issue_id)
    review = await service.draft_review(
        session=session,
        issue=issue,
        config=ReviewConfig(max_blocks=1),
        gateway_routes=ROUTES,
        actor="t",
    )
    assert review.facts["telemetry"] == {"blocks_read": 1, "complete": False}


async def test_lifecycle_edits_and_action_items_as_p4_issues(
    session: AsyncSession, matrix: Matrix
) -> None:
    incident = await make_incident(session, matrix, start=time.time() - 600)
    issue = await get(session, incident.issue_id)
    review = await service.draft_review(
        session=session, issue=issue, config=ReviewConfig(), gateway_routes=ROUTES, actor="t"
    )
    assert review.facts["impact"] is None  # no telemetry at all
    await service.transition_review(
        session=session, review_id=review.id, to=ReviewState.in_review, actor="ann"
    )
    with pytest.raises(InvalidTransition, match="root cause"):
        await service.transition_review(
            session=session, review_id=review.id, to=ReviewState.published, actor="ann"
        )
    await service.update_review(
        session=session,
        review_id=review.id,
        changes={"root_cause": "Provider timeouts", "went_well": "Paged in 30 s"},
        actor="ann",
    )
    item = await service.add_action_item(
        session=session,
        matrix=matrix,
        review_id=review.id,
        data=ActionItemCreate(title="Add a circuit breaker", assignee="bob"),
        actor="ann",
    )
    assert item.priority == "P4"
    assert "action-item" in item.labels and item.component == "payments"
    with pytest.raises(InvalidInput, match="unknown priority"):
        await service.add_action_item(
            session=session,
            matrix=matrix,
            review_id=review.id,
            data=ActionItemCreate(title="x", priority="P9"),
            actor="ann",
        )
    await service.transition_review(
        session=session, review_id=review.id, to=ReviewState.published, actor="ann"
    )
    read = await service.to_read(session=session, review=review)
    assert read.state is ReviewState.published and read.published_at is not None
    assert [(a.issue_id, a.priority, a.assignee) for a in read.action_items] == [
        (item.id, "P4", "bob")
    ]
    with pytest.raises(Conflict, match="published"):
        await service.update_review(
            session=session, review_id=review.id, changes={"summary": "x"}, actor="ann"
        )


async def test_runbooks_match_issues_and_workarounds_surface_and_search(
    session: AsyncSession, matrix: Matrix
) -> None:
    await service.save_runbook(
        session=session,
        name="payments-upstream",
        data=RunbookWrite(
            title="Payments provider times out",
            body="1. Check the provider status page\n2. Fail over to the secondary region",
            components=["payments"],
        ),
        actor="ann",
    )
    await service.save_runbook(
        session=session,
        name="error-rate",
        data=RunbookWrite(title="Error rate", body="Look at the route page", rules=["error-rate"]),
        actor="ann",
    )
    await service.save_runbook(
        session=session,
        name="search",
        data=RunbookWrite(title="Search slow", body="Reindex", components=["search"]),
        actor="ann",
    )
    with pytest.raises(Conflict):
        await service.save_runbook(
            session=session,
            name="search",
            data=RunbookWrite(title="x", body="y"),
            actor="ann",
            create=True,
        )
    # a resolved payments issue with a workaround, then a new one of the same component
    old = await make_incident(session, matrix, start=time.time() - 7200)
    await triage.update_issue(
        session=session,
        matrix=matrix,
        issue_id=old.issue_id,
        changes={"workaround": "Retry the payment with idempotency key after 30 seconds"},
        actor="ann",
    )
    await service.sync_workaround(session=session, issue_id=old.issue_id)
    new = await make_incident(session, matrix, start=time.time() - 100)
    await triage.transition(
        session=session, matrix=matrix, issue_id=new.issue_id, to=Status.reopened,
        reason="again", actor="ann",
    )  # fmt: skip
    knowledge = await service.knowledge_for(
        session=session, issue=await get(session, new.issue_id), gateway_routes=ROUTES
    )
    assert {rb.name for rb in knowledge.runbooks} == {"payments-upstream", "error-rate"}
    assert knowledge.matched_by["error-rate"] == ["rule error-rate"]
    assert [w.issue_id for w in knowledge.workarounds] == [old.issue_id]

    # stemmed: "failing" finds "Fail over"
    hits = await service.search(session=session, q="failing over secondary", limit=10)
    assert [h.ref for h in hits if h.kind == "runbook"] == [knowledge.runbooks[0].id] or [
        h.title for h in hits
    ] == ["Payments provider times out"]
    hits = await service.search(session=session, q="provider", limit=10)
    assert [(h.kind, h.link) for h in hits] == [("runbook", "/runbooks#runbook-payments-upstream")]
    hits = await service.search(session=session, q="idempotency retry", limit=10)
    assert [(h.kind, h.ref) for h in hits] == [("workaround", old.issue_id)]
    assert "idempotency" in hits[0].snippet.lower()
    # user text with search operators is taken as words, never an error
    await service.search(session=session, q='"status" OR -( NEAR', limit=5)
    with pytest.raises(InvalidInput):
        await service.search(session=session, q="   ", limit=5)

    # reopening the old issue takes its workaround out of the index
    await triage.transition(
        session=session, matrix=matrix, issue_id=old.issue_id, to=Status.reopened,
        reason="back", actor="ann",
    )  # fmt: skip
    await service.sync_workaround(session=session, issue_id=old.issue_id)
    assert await service.search(session=session, q="idempotency", limit=10) == []
    await service.delete_runbook(session=session, name="payments-upstream")
    assert await service.search(session=session, q="provider", limit=10) == []


async def test_config_runbooks_are_kept_in_step_with_the_file(session: AsyncSession) -> None:
    cfg = parse_config(
        "review:\n  runbooks:\n    - name: a\n      title: A\n      body: alpha steps\n"
        "      components: [payments]\n"
    ).review
    await service.sync_config_runbooks(session=session, runbooks=cfg.runbooks)
    with pytest.raises(Conflict, match="configuration file"):
        await service.save_runbook(
            session=session, name="a", data=RunbookWrite(title="x", body="y"), actor="ann"
        )
    with pytest.raises(Conflict, match="configuration file"):
        await service.delete_runbook(session=session, name="a")
    await service.sync_config_runbooks(session=session, runbooks=[])
    assert await service.list_runbooks(session=session) == []
    assert await service.search(session=session, q="alpha", limit=5) == []


@pytest.mark.parametrize("q", ['"', "*", "NEAR(", "title:x", "a AND", "(", "-", "é", "\\", "''"])
async def test_search_takes_any_text_as_words(session: AsyncSession, q: str) -> None:
    await service.save_runbook(
        session=session,
        name="rb",
        data=RunbookWrite(title="Payments", body="Payment timeouts: fail over"),
        actor="ann",
    )
    assert await service.search(session=session, q=q, limit=5) == []
    assert [h.title for h in await service.search(session=session, q="payments", limit=5)] == [
        "Payments"
    ]
