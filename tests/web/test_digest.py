"""The console's stakeholder digest preview."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from hypercare.api.state import AppState
from hypercare.auth.rules import Role
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
