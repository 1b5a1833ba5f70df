"""Correlation in an alert storm, through the API and the intake, on both stores: ids cited in
free text, cause-based joins, flapping, auto-resolve and reopen, the open-issue cache."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from hypercare.api.state import AppState
from hypercare.auth.rules import Role
from hypercare.detection import jobs
from hypercare.detection.citations import CallLogClock
from hypercare.feedback import service as feedback
from hypercare.feedback.drafts import SignalDraft
from hypercare.store.base import utcnow
from hypercare.telemetry import nodes
from hypercare.telemetry.wire import encode_batch
from tests.conftest import auth
from tests.telemetry.factory import record

Tokens = dict[Role, str]


async def detail(client: httpx.AsyncClient, tokens: Tokens, issue_id: int) -> dict[str, Any]:
    r = await client.get(f"/api/v1/issues/{issue_id}", headers=auth(tokens[Role.viewer]))
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def gateway(rule: str, route: str, status: str = "firing", **kw: Any) -> SignalDraft:
    return SignalDraft(
        kind="system",
        source="gateway",
        summary=f"{route}: {rule}",
        dedup_key=f"gateway:{rule}:{route}",
        raw={"rule": rule, "metric": "error_rate", "value": 0.3},
        severity="high",
        status=status,
        route=route,
        labels={"rule": rule},
        **kw,
    )


async def ingest(state: AppState, *drafts: SignalDraft, ago: float = 0.0) -> list[int | None]:
    async with state.sessions() as session, session.begin():
        done = await feedback.ingest(
            session=session,
            matrix=state.matrix,
            priorities=state.config.feedback.priorities,
            drafts=list(drafts),
            attach=state.attach,
            now=utcnow() - timedelta(seconds=ago),
        )
    return [s.issue_id for s in done.signals]


async def test_request_id_in_ticket_text_links_through_the_call_log(
    client: httpx.AsyncClient, tokens: Tokens, state: AppState
) -> None:
    (payments,) = await ingest(state, gateway("5xx-rate", "payment-status"))
    await ingest(state, gateway("5xx-rate", "catalog-search"))
    async with state.sessions() as s, s.begin():
        node = (await nodes.create_node_token(session=s, name="edge-1")).token
    rid = uuid.uuid4().hex
    calls = [record(time.time() - 5, route="payment-status", status=503, request_id=rid)]
    body = encode_batch(uuid.uuid4().hex, calls, None, sent_at=time.time())
    r = await client.post("/api/v1/internal/telemetry", content=body, headers=auth(node))
    assert r.status_code == 200, r.text
    ticket = {
        "type": "ticket",
        "subject": "Order went wrong",
        "description": f"Your site said error, reference {rid.upper()} — please check",
        "channel": "email",
    }
    r = await client.post("/api/v1/feedback", json=ticket, headers=auth(tokens[Role.support]))
    assert r.status_code == 202, r.text
    assert r.json()["issues"] == [payments]
    issue = await detail(client, tokens, payments)
    reasons = [x for link in issue["links"] for x in link["reasons"]]
    assert f"cites request id {rid[:12]} of a call on route payment-status" in reasons


async def test_routes_of_one_component_failing_together_are_one_issue(
    client: httpx.AsyncClient, tokens: Tokens, state: AppState
) -> None:
    (status_issue,) = await ingest(state, gateway("5xx-rate", "payment-status"))
    (create_issue,) = await ingest(state, gateway("5xx-rate", "payment-create"))
    (catalog,) = await ingest(state, gateway("5xx-rate", "catalog-search"))
    assert create_issue == status_issue
    assert catalog != status_issue
    issue = await detail(client, tokens, status_issue)
    reasons = [x for link in issue["links"] for x in link["reasons"]]
    assert any(
        r.startswith("route payment-create of the same component payments, started together")
        for r in reasons
    )
    # an auth-failure spike on the same route is a security matter: its own issue
    (attack,) = await ingest(state, gateway("auth-failure-spike", "payment-status"))
    assert attack not in (status_issue, catalog)
    # a traffic drop on another route of the component joins nothing
    (drop,) = await ingest(state, gateway("traffic-drop", "payment-create"))
    assert drop not in (status_issue, catalog, attack)


async def test_flapping_is_counted_on_one_issue(
    client: httpx.AsyncClient, tokens: Tokens, state: AppState
) -> None:
    issues = set()
    for status in ("firing", "resolved", "firing", "resolved", "firing"):
        issues.update(await ingest(state, gateway("5xx-rate", "order-create", status)))
    assert len(issues) == 1
    (issue_id,) = issues
    assert issue_id is not None
    issue = await detail(client, tokens, issue_id)
    assert issue["flapping"] is True
    (flap,) = issue["flaps"]
    assert flap["dedup_key"] == "gateway:5xx-rate:order-create"
    assert (flap["cycles"], flap["changes"], flap["status"]) == (2, 4, "firing")
    steady = await ingest(state, gateway("5xx-rate", "catalog-item"))
    assert (await detail(client, tokens, steady[0] or 0))["flapping"] is False


async def test_blips_resolve_automatically_and_reopen_when_they_fire_again(
    client: httpx.AsyncClient, tokens: Tokens, state: AppState
) -> None:
    (blip,) = await ingest(state, gateway("5xx-rate", "order-detail"), ago=1300)
    await ingest(state, gateway("5xx-rate", "order-detail", "resolved"), ago=1260)
    (worked,) = await ingest(state, gateway("5xx-rate", "catalog-item"), ago=1300)
    await ingest(state, gateway("5xx-rate", "catalog-item", "resolved"), ago=1260)
    (recent,) = await ingest(state, gateway("5xx-rate", "order-create"), ago=60)
    await ingest(state, gateway("5xx-rate", "order-create", "resolved"), ago=30)
    r = await client.post(
        f"/api/v1/issues/{worked}/comments",
        json={"text": "looking at it"},
        headers=auth(tokens[Role.responder]),
    )
    assert r.status_code in (200, 201), r.text
    await jobs.auto_resolve(state)
    issue = await detail(client, tokens, blip or 0)
    assert issue["status"] == "resolved"
    assert "auto-resolved" in issue["labels"]
    assert (await detail(client, tokens, worked or 0))["status"] == "new"  # a person touched it
    assert (await detail(client, tokens, recent or 0))["status"] == "new"  # not quiet long enough
    r = await client.get(f"/api/v1/issues/{blip}/timeline", headers=auth(tokens[Role.viewer]))
    entry = [e for e in r.json() if "auto-resolved: every signal resolved within" in e["text"]][-1]
    assert entry["text"].startswith("triaged → resolved")
    # 40 s between the two signals, give or take the time between the two ingests
    assert re.search(r"within 4\d s and nothing fired for 10 min", entry["text"]), entry["text"]
    (again,) = await ingest(state, gateway("5xx-rate", "order-detail"))
    assert again == blip
    issue = await detail(client, tokens, blip or 0)
    assert issue["status"] == "reopened"
    assert "auto-resolved" not in issue["labels"]


async def test_a_closed_issue_leaves_the_cache_when_the_close_commits(
    client: httpx.AsyncClient, tokens: Tokens, state: AppState
) -> None:
    (first,) = await ingest(state, gateway("5xx-rate", "payment-status"))
    (joined,) = await ingest(state, gateway("p95-vs-baseline", "payment-status"))
    assert joined == first
    r = await client.post(
        f"/api/v1/issues/{first}/transitions",
        json={"to": "closed", "reason": "won't fix: test"},
        headers=auth(tokens[Role.responder]),
    )
    assert r.status_code == 200, r.text
    (later,) = await ingest(state, gateway("no-healthy-target", "payment-status"))
    assert later != first


async def test_the_cache_catches_a_change_it_was_not_told_about(
    state: AppState, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a change with no timeline entry (as a row committed later than the id margin reaches
    # back looks to the cache): the periodic check of the open issues' last changes finds it
    from sqlalchemy import update

    from hypercare.detection import attach
    from hypercare.triage.models import Issue

    (first,) = await ingest(state, gateway("5xx-rate", "payment-status"))
    (other,) = await ingest(state, gateway("5xx-rate", "order-detail"))
    assert other != first
    async with state.sessions() as session, session.begin():
        await session.execute(
            update(Issue)
            .where(Issue.id == first)
            .values(route="catalog-search", updated_at=utcnow())
        )
    correlator = state.attach
    assert isinstance(correlator, attach.Correlator)
    before = correlator.open_issues.verifies
    monkeypatch.setattr(attach, "_VERIFY_SECONDS", 0.0)
    (found,) = await ingest(state, gateway("5xx-rate", "catalog-search"))
    assert correlator.open_issues.verifies == before + 1
    assert found == first  # its new route, read again
    assert correlator.open_issues.full_reads == 1  # never the whole cache again


async def test_the_intake_waits_for_the_call_log_to_catch_up() -> None:
    clock = CallLogClock()
    now = time.time()
    assert await clock.wait_past(now, 5)  # no calls flowing: nothing to wait for
    clock.observe([record(now - 1)])
    assert not await clock.wait_past(now, 0.05)  # calls flow but none from `now` yet
    waiting = asyncio.create_task(clock.wait_past(now, 30))
    await asyncio.sleep(0)  # let it start waiting
    assert not waiting.done()
    clock.observe([record(now + 0.5)])
    assert await asyncio.wait_for(waiting, 30)
    assert (clock.waits, clock.timeouts) == (2, 1)


@pytest.mark.parametrize("correlation", [True, False])
async def test_exact_dedup_is_decide_with_correlation_off(
    state: AppState, correlation: bool
) -> None:
    from hypercare.detection.attach import Correlator

    state.attach = Correlator(state.config, correlation=correlation)
    (a,) = await ingest(state, gateway("5xx-rate", "payment-status"))
    (b,) = await ingest(state, gateway("p95-vs-baseline", "payment-status"))
    (c,) = await ingest(state, gateway("5xx-rate", "payment-status"))
    assert c == a
    assert (b == a) is correlation


async def test_a_ticket_citing_a_call_not_yet_shipped_waits_for_it(
    client: httpx.AsyncClient, tokens: Tokens, state: AppState
) -> None:
    """The acceptance test's `[3] == [2]` on a busy machine: the ticket came before the call."""
    (payments,) = await ingest(state, gateway("5xx-rate", "payment-status"))
    async with state.sessions() as s, s.begin():
        node = (await nodes.create_node_token(session=s, name="edge-1")).token

    async def ship(records: list[Any]) -> None:
        body = encode_batch(uuid.uuid4().hex, records, None, sent_at=time.time())
        r = await client.post("/api/v1/internal/telemetry", content=body, headers=auth(node))
        assert r.status_code == 200, r.text

    await ship([record(time.time() - 2, route="catalog-search")])  # calls are flowing
    rid = uuid.uuid4().hex
    failed_at = time.time() - 0.2
    ticket = {"type": "ticket", "subject": "Checkout broken?", "request_ids": [rid]}
    posting = asyncio.create_task(
        client.post("/api/v1/feedback", json=ticket, headers=auth(tokens[Role.support]))
    )
    deadline = time.monotonic() + 30
    while state.call_clock.waits == 0:  # the intake is waiting for the call log
        assert not posting.done(), posting.result().text
        assert time.monotonic() < deadline, "the intake did not wait for the call log"
        await asyncio.sleep(0.01)
    # the worker's next batch: the cited call, and one after the ticket arrived
    await ship(
        [
            record(failed_at, route="payment-status", status=503, request_id=rid),
            record(time.time(), route="catalog-search"),
        ]
    )
    r = await asyncio.wait_for(posting, 30)
    assert r.status_code == 202, r.text
    assert r.json()["issues"] == [payments]


# PostgreSQL only: SQLite has one writer at a time, so no row commits late there
@pytest.mark.parametrize(
    "engine", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
async def test_a_change_committed_late_within_the_margin_is_read(
    state: AppState, engine: Any
) -> None:
    # on PostgreSQL an id is taken before its commit: a change to an issue whose timeline
    # entry commits after later ones is read by the next refresh (the margin), once, while
    # the rows of the margin read before are not sent again
    from sqlalchemy import func, select

    from hypercare.detection import attach
    from hypercare.triage import service as triage
    from hypercare.triage.models import Issue, TimelineEntry

    correlator = state.attach
    assert isinstance(correlator, attach.Correlator)
    (first,) = await ingest(state, gateway("5xx-rate", "payment-status"))
    async with state.sessions() as late:
        issue = await late.scalar(select(Issue).where(Issue.id == first))
        assert issue is not None
        issue.route = "catalog-search"
        await triage.add_entries(
            late, [triage.entry_row(issue, actor="alice", kind="field", text="route")]
        )
        late_id = await late.scalar(select(func.max(TimelineEntry.id)))  # taken, uncommitted
        (other,) = await ingest(state, gateway("5xx-rate", "order-detail"))
        assert other != first
        # this one's refresh reads the entries `other` wrote: the marks pass the late id
        await ingest(state, gateway("p95-vs-baseline", "order-detail"))
        assert correlator.open_issues.timeline_mark > late_id
        seen = set(correlator.open_issues.seen_entries)
        assert seen, "the refresh keeps the ids of the margin it read"
        await late.commit()
    verifies = correlator.open_issues.verifies
    (found,) = await ingest(state, gateway("5xx-rate", "catalog-search"))
    assert found == first  # its new route, read through the margin
    assert correlator.open_issues.verifies == verifies  # not by the periodic check
    assert seen <= correlator.open_issues.seen_entries
