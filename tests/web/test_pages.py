"""Every console page, rendered in process: content, roles, filters, sorting, live fragments."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from hypercare.auth.rules import Role
from tests.conftest import auth
from tests.web.conftest import Browser, new_issue

Make = Callable[[Role], Awaitable[Browser]]


async def test_overview_shows_counts_deadlines_and_activity(browser_for: Make) -> None:
    b = await browser_for(Role.support)
    await new_issue(b, priority="P1", component="payments")
    await new_issue(b, title="Slow search", priority="P3")
    r = await b.http.get("/")
    assert r.status_code == 200
    assert r.headers["content-security-policy"].startswith("default-src 'self'")
    html = r.text
    assert "Open issues by priority" in html and "Latest activity" in html
    assert "Checkout fails" in html and "Slow search" in html
    assert 'data-count="1"' in html and "data-due=" in html
    assert 'id="flow-chart"' in html and "2 issues were opened" in html
    # the telemetry and feedback parts fill the overview's regions
    assert 'id="api-health"' in html and 'id="latest-signals"' in html
    live = await b.http.get("/overview/live")
    assert live.status_code == 200 and 'id="overview-live"' in live.text
    assert "<html" not in live.text


async def test_nav_follows_the_role(browser_for: Make) -> None:
    viewer = await browser_for(Role.viewer)
    html = (await viewer.http.get("/")).text
    assert 'href="/triage"' in html and 'href="/issues/new"' not in html
    support = await browser_for(Role.support)
    assert 'href="/issues/new"' in (await support.http.get("/")).text


async def test_triage_filters_sorts_and_pages(browser_for: Make) -> None:
    b = await browser_for(Role.support)
    for n in range(12):
        await new_issue(b, title=f"Issue {n:02d}", priority=f"P{n % 4 + 1}", component=f"c{n % 3}")
    r = await b.http.get("/triage")
    assert r.status_code == 200 and "12 issues" in r.text
    r = await b.http.get("/triage?priority=P1")
    assert "3 issues" in r.text and "Issue 04" in r.text and "Issue 01" not in r.text
    r = await b.http.get("/triage?component=c2&q=issue%2005")
    assert "1 issue<" in r.text and "Issue 05" in r.text
    r = await b.http.get("/triage?sort=-id")
    assert r.text.index("Issue 11") < r.text.index("Issue 00")
    assert 'aria-sort="descending"' in r.text
    r = await b.http.get("/triage?sort=id")
    assert r.text.index("Issue 00") < r.text.index("Issue 11")
    r = await b.http.get("/triage?status=closed")
    assert "0 issues" in r.text and "No issue matches" in r.text
    r = await b.http.get("/triage?status=bogus")
    assert r.status_code == 422 and "unknown status" in r.text


async def test_triage_pages_through_many_issues(
    browser_for: Make, client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    b = await browser_for(Role.viewer)
    for n in range(55):
        r = await client.post(
            "/api/v1/issues", json={"title": f"Bulk {n:02d}"}, headers=auth(tokens[Role.support])
        )
        assert r.status_code == 201
    first = await b.http.get("/triage?sort=id")
    assert "showing 1\u201350" in first.text and 'rel="next"' in first.text
    second = await b.http.get("/triage?sort=id&offset=50")
    assert "Bulk 54" in second.text and "Bulk 00" not in second.text
    assert 'rel="prev"' in second.text


async def test_viewer_sees_no_triage_controls(browser_for: Make) -> None:
    support = await browser_for(Role.support)
    iid = await new_issue(support)
    viewer = await browser_for(Role.viewer)
    queue = (await viewer.http.get("/triage")).text
    assert "Checkout fails" in queue
    assert f'/issues/{iid}/assign"' not in queue and "Actions</th>" not in queue
    page = (await viewer.http.get(f"/issues/{iid}")).text
    assert "Timeline" in page and f"/issues/{iid}/transition" not in page
    assert "Add a comment" not in page
    responder = await browser_for(Role.responder)
    queue = (await responder.http.get("/triage")).text
    assert f"/issues/{iid}/assign" in queue and 'data-action="t"' in queue


async def test_issue_page_shows_details_milestones_and_timeline(browser_for: Make) -> None:
    b = await browser_for(Role.responder)
    iid = await new_issue(b, priority="P1", route="POST /api/orders", labels="checkout, web")
    await b.post(f"/issues/{iid}/transition", {"to": "investigating"})
    r = await b.http.get(f"/issues/{iid}")
    assert r.status_code == 200
    html = r.text
    for text in ("POST /api/orders", "checkout", "Milestones", "MTTA", "all hypercare leads"):
        assert text in html
    assert 'aria-current="step"' in html
    assert "Issue opened as P1" in html and "new → investigating" in html
    fragment = await b.http.get(f"/issues/{iid}/timeline")
    assert fragment.status_code == 200 and 'id="timeline-list"' in fragment.text
    missing = await b.http.get("/issues/9999")
    assert missing.status_code == 404 and "no issue with id 9999" in missing.text


async def test_new_issue_form_keeps_input_on_errors(browser_for: Make) -> None:
    b = await browser_for(Role.support)
    form = await b.http.get("/issues/new")
    assert form.status_code == 200 and 'name="title"' in form.text
    r = await b.post(
        "/issues/new", {"title": "", "description": "keep me", "impact_started_at": "yesterday"}
    )
    assert r.status_code == 422
    assert "keep me" in r.text and "Impact started" in r.text and "Title" in r.text
    r = await b.post("/issues/new", {"title": "x", "priority": "P9"})
    assert r.status_code == 422 and "unknown priority" in r.text
    iid = await new_issue(b, impact_started_at="2026-11-27T10:00", assignee="dana")
    page = (await b.http.get(f"/issues/{iid}")).text
    assert "2026-11-27 10:00 UTC" in page and "dana" in page


async def test_viewer_cannot_open_the_new_issue_form(browser_for: Make) -> None:
    viewer = await browser_for(Role.viewer)
    r = await viewer.http.get("/issues/new")
    assert r.status_code == 403 and "support" in r.text
    r = await viewer.post("/issues/new", {"title": "sneaky"})
    assert r.status_code == 403


async def test_static_files_are_served_from_the_console(app: object) -> None:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as http:
        for path in (
            "/static/console.js",
            "/static/console.css",
            "/static/vendor/htmx-2.0.11.min.js",
            "/static/vendor/uPlot-1.6.32.iife.min.js",
            "/static/vendor/uPlot-1.6.32.min.css",
        ):
            r = await http.get(path)
            assert r.status_code == 200, path
        assert (await http.get("/static/../web/app.py")).status_code == 404


async def test_issue_page_marks_a_flapping_rule(browser_for: Make, app: object) -> None:
    from hypercare.feedback import service as feedback
    from hypercare.feedback.drafts import SignalDraft

    state = app.state.hypercare  # type: ignore[attr-defined]
    issue_id = None
    for status in ("firing", "resolved", "firing"):
        async with state.sessions() as session, session.begin():
            done = await feedback.ingest(
                session=session,
                matrix=state.matrix,
                priorities=state.config.feedback.priorities,
                drafts=[
                    SignalDraft(
                        kind="system",
                        source="alertmanager",
                        summary="DiskFull on db-1",
                        dedup_key="am:diskfull:db-1",
                        raw={},
                        status=status,
                    )
                ],
                attach=state.attach,
            )
            issue_id = done.signals[0].issue_id
    b = await browser_for(Role.viewer)
    html = (await b.http.get(f"/issues/{issue_id}")).text
    assert "flapping ×1: am:diskfull:db-1" in html
    assert "fired again 1× after resolving (2 changes)" in html
