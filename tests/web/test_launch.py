"""The console's launch pages and overview tile (in process)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from hypercare.api.state import AppState
from hypercare.auth.rules import Role
from hypercare.config import HypercareConfig, parse_config
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
