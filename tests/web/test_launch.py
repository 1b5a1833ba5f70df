"""The console's launch pages and overview tile (in process)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from hypercare.api.state import AppState
from hypercare.auth.rules import Role
from hypercare.config import HypercareConfig, parse_config
from hypercare.launch import service
from hypercare.store.base import utcnow
from tests.launch.conftest import CONFIG, minute_row
from tests.web.conftest import Browser, new_issue

Make = Callable[[Role], Awaitable[Browser]]


@pytest.fixture
def config() -> HypercareConfig:
    # the launch runs now: the overview tile lists running launches only
    now = utcnow()
    text = CONFIG.replace("2026-01-05T09:00:00Z", now.replace(year=now.year - 1).isoformat())
    text = text.replace("2026-02-02T09:00:00Z", now.replace(year=now.year + 1).isoformat())
    return parse_config(text, "test.yaml")


async def test_launch_page_and_overview_tile(browser_for: Make, state: AppState) -> None:
    b = await browser_for(Role.support)
    await new_issue(b, priority="P1", route="payment-status")
    async with state.sessions() as s, s.begin():
        s.add(minute_row("payment-status", int(utcnow().timestamp()) - 120, 100, 5, 50))

    home = await b.http.get("/")
    assert 'hx-get="/overview/launch"' in home.text
    tile = await b.http.get("/overview/launch")
    assert tile.status_code == 200
    assert 'href="/launches/checkout-v2"' in tile.text and "not ready" in tile.text
    assert "1 of 3 exit criteria pass" in tile.text and "no open P1/P2 issue" in tile.text

    listing = await b.http.get("/launches")
    assert listing.status_code == 200 and "checkout-v2" in listing.text

    page = await b.http.get("/launches/checkout-v2")
    assert page.status_code == 200
    text = page.text
    assert "Readiness scorecard" in text and "FAIL" in text and 'href="/issues/1"' in text
    assert "SLOs and error budgets" in text and "<svg" in text and "avail" in text
    assert "Roster (RACI)" in text and "lee" in text
    assert "Evaluation history" in text

    r = await b.http.get("/launches/checkout-v2/report.html?kind=final")
    assert r.status_code == 200 and "Post-hypercare report: checkout-v2" in r.text
    r = await b.http.get("/launches/checkout-v2/report.md")
    assert r.status_code == 200 and r.text.startswith("# Daily report: checkout-v2")
    r = await b.http.get("/launches/nope")
    assert r.status_code == 404 and "no launch named" in r.text


async def test_new_launch_and_state_forms(browser_for: Make, state: AppState) -> None:
    viewer = await browser_for(Role.viewer)
    page = await viewer.http.get("/launches")
    assert "New launch" not in page.text
    r = await viewer.post("/launches", {"name": "x", "start": "2026-01-01T00:00"})
    assert r.status_code == 403 and "needs the &#39;responder&#39; role" in r.text
    page = await viewer.http.get("/launches/checkout-v2")
    assert "Change state" not in page.text
    r = await viewer.post("/launches/checkout-v2/state", {"to": "exit_review"})
    assert r.status_code == 403

    b = await browser_for(Role.responder)
    page = await b.http.get("/launches")
    assert "New launch" in page.text and "payment-status" in page.text
    # no CSRF token: refused before anything is read
    r = await b.http.post("/launches", data={"name": "x", "start": "2026-01-01T00:00"})
    assert r.status_code == 403 and "security token" in r.text
    start = utcnow().replace(year=utcnow().year - 1).strftime("%Y-%m-%dT%H:%M")
    bad = {
        "name": "app-v5",
        "start": start,
        "end": "soon",
        "time_zone": "Europe/Berlin",
        "routes": "payment-status, nope",
        "exit_criteria": "- &a {no_open: [P1]}\n- *a",
        "slos": "name: avail",
    }
    r = await b.post("/launches", bad)
    assert r.status_code == 422
    assert "end: use a date and time like 2026-11-27T14:30" in r.text
    assert "exit criteria: anchors and aliases (&amp;, *) are not allowed here" in r.text
    assert "slos: give a YAML list" in r.text
    assert 'value="payment-status, nope"' in r.text  # what was typed is kept
    r = await b.post("/launches", {**bad, "end": "", "exit_criteria": "- no_open: [P1", "slos": ""})
    assert r.status_code == 422 and "exit criteria: not valid YAML: line" in r.text
    r = await b.post("/launches", {**bad, "end": "", "exit_criteria": "", "slos": ""})
    assert r.status_code == 422 and "routes.1: unknown route &#39;nope&#39;" in r.text
    good = {
        **bad,
        "end": "",
        "routes": "payment-status",
        "slos": "- {name: avail, route: payment-status, target: 99.5}",
        "exit_criteria": "- slo_met: {for: 24h}\n- no_open: [P1, P2]",
        "objectives": "fast\n\n  checkout  \n",
    }
    r = await b.post("/launches", {**good, "name": "checkout-v2"})
    assert r.status_code == 409 and "declared in the config file" in r.text
    r = await b.post("/launches", good)
    assert r.status_code == 303 and r.headers["location"] == "/launches/app-v5"
    r = await b.post("/launches", good)
    assert r.status_code == 409 and "already exists" in r.text

    async with state.sessions() as s:
        made = await service.locate(session=s, config=state.config, name="app-v5")
    # the browser's local time is read in the launch's time zone
    berlin = datetime.fromisoformat(start).replace(tzinfo=ZoneInfo("Europe/Berlin"))
    assert made.source == "api" and made.launch.start == berlin
    assert made.launch.objectives == ["fast", "checkout"]

    page = await b.http.get("/launches/app-v5")
    assert "made through the API" in page.text and 'id="state"' in page.text
    r = await b.post("/launches/app-v5/state", {"to": "extended", "end": "", "note": "n"})
    assert r.status_code == 409 and "needs a new end" in r.text
    r = await b.post("/launches/app-v5/state", {"to": "flying"})
    assert r.status_code == 422 and 'id="state-error"' in r.text
    r = await b.post("/launches/app-v5/state", {"to": "extended", "end": "next week"})
    assert r.status_code == 422 and "new end: use a date and time" in r.text
    end = utcnow().replace(year=utcnow().year + 1).strftime("%Y-%m-%dT%H:%M")
    r = await b.post("/launches/app-v5/state", {"to": "extended", "end": end, "note": "more"})
    assert r.status_code == 303 and r.headers["location"] == "/launches/app-v5#state"
    page = await b.http.get("/launches/app-v5")
    history = page.text[page.text.index("launch-state-history") :][:300]
    assert "exit review → extended by responder-user: more" in history, history
    r = await b.post("/launches/nope/state", {"to": "active"})
    assert r.status_code == 404
