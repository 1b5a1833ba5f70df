"""Console actions: CSRF, roles, htmx row swaps, and the same rules as the API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from html import unescape

import httpx
import pytest

from hypercare.auth.rules import Role
from tests.conftest import auth
from tests.web.conftest import Browser, new_issue

Make = Callable[[Role], Awaitable[Browser]]


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/issues/{id}/assign", {"assignee": "dana"}),
        ("/issues/{id}/priority", {"priority": "P1"}),
        ("/issues/{id}/transition", {"to": "triaged"}),
        ("/issues/{id}/details", {"workaround": "retry"}),
        ("/issues/{id}/comment", {"text": "hello"}),
        ("/issues/new", {"title": "x"}),
    ],
)
async def test_every_action_refuses_a_missing_or_wrong_csrf_token(
    browser_for: Make, path: str, data: dict[str, str]
) -> None:
    b = await browser_for(Role.admin)
    iid = await new_issue(b)
    url = path.format(id=iid)
    r = await b.http.post(url, data=data)
    assert r.status_code == 403 and "security token" in r.text
    r = await b.http.post(url, data={**data, "csrf": "nope"})
    assert r.status_code == 403
    r = await b.http.post(url, data=data, headers={"HX-Request": "true", "X-CSRF-Token": "x"})
    assert r.status_code == 403 and r.text.startswith('<p class="flash error"')
    timeline = (await b.http.get(f"/issues/{iid}/timeline")).text
    assert timeline.count('class="entry') == 1  # only "created": nothing changed


@pytest.mark.parametrize(
    ("role", "path", "data", "allowed"),
    [
        (Role.viewer, "/issues/{id}/comment", {"text": "hi"}, False),
        (Role.support, "/issues/{id}/comment", {"text": "hi"}, True),
        (Role.support, "/issues/{id}/assign", {"assignee": "dana"}, False),
        (Role.support, "/issues/{id}/priority", {"priority": "P1"}, False),
        (Role.support, "/issues/{id}/transition", {"to": "triaged"}, False),
        (Role.support, "/issues/{id}/details", {"root_cause": "x"}, False),
        (Role.responder, "/issues/{id}/assign", {"assignee": "dana"}, True),
        (Role.responder, "/issues/{id}/transition", {"to": "triaged"}, True),
    ],
)
async def test_roles_are_enforced_on_the_server(
    browser_for: Make, role: Role, path: str, data: dict[str, str], allowed: bool
) -> None:
    admin = await browser_for(Role.admin)
    iid = await new_issue(admin)
    b = await browser_for(role)
    r = await b.post(path.format(id=iid), data)
    if allowed:
        assert r.status_code == 303 and r.headers["location"] == f"/issues/{iid}#timeline"
    else:
        assert r.status_code == 403 and "needs the" in r.text


async def test_triage_row_actions_swap_the_row(
    browser_for: Make, client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    b = await browser_for(Role.responder)
    iid = await new_issue(b, priority="P3")
    r = await b.htmx(f"/issues/{iid}/assign", {"assignee": "dana", "view": "row"})
    assert r.status_code == 200 and r.text.lstrip().startswith(f'<tr id="issue-{iid}"')
    assert 'value="dana"' in r.text and "assigned to dana" in r.headers["hx-trigger-after-settle"]
    r = await b.htmx(f"/issues/{iid}/priority", {"priority": "P1", "view": "row"})
    assert 'class="pri pri-p1"' in r.text
    r = await b.htmx(f"/issues/{iid}/transition", {"to": "investigating", "view": "row"})
    assert "status-investigating" in r.text
    api = (await client.get(f"/api/v1/issues/{iid}", headers=auth(tokens[Role.viewer]))).json()
    assert api["assignee"] == "dana" and api["priority"] == "P1"
    assert api["status"] == "investigating" and api["acknowledged_at"]
    # on the issue page (htmx without a row) the page reloads itself
    r = await b.htmx(f"/issues/{iid}/comment", {"text": "on it"})
    assert r.status_code == 204 and r.headers["hx-refresh"] == "true"


async def test_domain_errors_come_back_as_messages(browser_for: Make) -> None:
    b = await browser_for(Role.responder)
    iid = await new_issue(b)
    r = await b.htmx(f"/issues/{iid}/transition", {"to": "closed", "view": "row"})
    assert r.status_code == 422 and "needs a 'reason'" in unescape(r.text)
    r = await b.htmx(f"/issues/{iid}/transition", {"to": "verified", "view": "row"})
    assert r.status_code == 409 and "allowed from 'new'" in unescape(r.text)
    r = await b.post(f"/issues/{iid}/transition", {"to": "nowhere"})
    assert r.status_code == 422 and "<html" in r.text and "choose the status" in r.text
    r = await b.post(f"/issues/{iid}/priority", {"priority": "P7"})
    assert r.status_code == 422 and "unknown priority" in r.text
    r = await b.post(f"/issues/{iid}/comment", {"text": "   "})
    assert r.status_code == 422
    r = await b.post("/issues/424242/assign", {"assignee": "x"})
    assert r.status_code == 404
    r = await b.post(f"/issues/{iid}/assign", {"assignee": "x" * 500})
    assert r.status_code == 422 and "too long" in r.text
    r = await b.post(f"/issues/{iid}/transition", {"to": "closed", "reason": "duplicate of #1"})
    assert r.status_code == 303


async def test_details_and_comments_land_on_the_timeline(browser_for: Make) -> None:
    b = await browser_for(Role.responder)
    iid = await new_issue(b)
    r = await b.post(
        f"/issues/{iid}/details",
        {"workaround": "use the web app", "root_cause": "pool exhausted", "fix_ref": "PR-42"},
    )
    assert r.status_code == 303
    await b.post(f"/issues/{iid}/comment", {"text": "deployed to canary"})
    html = (await b.http.get(f"/issues/{iid}")).text
    for text in ("use the web app", "pool exhausted", "PR-42", "deployed to canary"):
        assert text in html
    assert html.count("Workaround changed") == 1
