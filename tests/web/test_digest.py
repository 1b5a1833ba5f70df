"""The console's stakeholder digest: its preview and the digests sent."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from hypercare.api.state import AppState
from hypercare.auth.rules import Role
from hypercare.comms import service as comms_service
from hypercare.store.base import utcnow
from hypercare.triage import service as triage
from hypercare.triage.models import IssueCreate
from tests.web.conftest import Browser

Make = Callable[[Role], Awaitable[Browser]]


async def test_digest_preview_page(state: AppState, browser_for: Make) -> None:
    async with state.sessions() as s, s.begin():
        await triage.create_issue(
            session=s,
            matrix=state.matrix,
            data=IssueCreate(title="<script>x</script>", priority="P1"),
            actor="api",
        )
    viewer = await browser_for(Role.viewer)
    page = await viewer.http.get("/digest")
    assert page.status_code == 200
    assert 'href="/digest"' in page.text  # in the navigation
    assert "<h1>Hypercare digest</h1>" in page.text
    assert "<tr><td>P1</td><td>1</td><td>0</td><td>0</td></tr>" in page.text
    assert "| P1 | 1 | 0 | 0 |" in page.text  # the Markdown too
    assert "<script>x" not in page.text
    assert (await viewer.http.get("/digest?hours=0")).status_code in (400, 422)


async def test_sent_digests_with_their_state_and_replay(state: AppState, browser_for: Make) -> None:
    """The digest page lists the digests' deliveries (a dead one with its error), and a
    responder replays one from there."""
    now = utcnow()
    async with state.sessions() as s, s.begin():
        rows = [
            comms_service.message_delivery(
                channel=f"{name}>digest.{int(now.timestamp())}",
                channel_type="webhook",
                recipient="https://hooks.example.com/digest",
                message={"kind": "digest", "subject": "Hypercare digest (scheduled 09:00)"},
                now=now,
                event=comms_service.DIGEST_EVENT,
            )
            for name in ("ops-hook", "leads")
        ]
        rows[0].state, rows[0].attempts, rows[0].error = "dead", 4, "HTTP 500"
        rows[1].state, rows[1].attempts = "sent", 1
        s.add_all(rows)
    dead = rows[0].id
    viewer = await browser_for(Role.viewer)
    page = (await viewer.http.get("/digest")).text
    assert "1 sent, 1 dead, 0 to be retried, 0 pending" in page
    assert f'id="delivery-{dead}"' in page and "HTTP 500" in page
    assert f'action="/notifications/{dead}/replay"' not in page  # viewers do not replay
    responder = await browser_for(Role.responder)
    assert f'action="/notifications/{dead}/replay"' in (await responder.http.get("/digest")).text
    r = await responder.post(f"/notifications/{dead}/replay", {})
    assert r.status_code == 303 and r.headers["location"] == "/digest#sent"
    async with state.sessions() as s:
        counts = await comms_service.digest_outcomes(session=s)
    assert (counts["dead"], counts["pending"]) == (0, 1)
