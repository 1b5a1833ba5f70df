"""The launch page in a real browser: the overview says how far the launch is from exit, the
scorecard shows a P2 blocking the exit and passing once it is resolved, and the report opens
as a standalone page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from hypercare.store.base import utcnow
from tests.web.live_server import CHROMIUM_ARGS, LiveServer, require_chromium, running_console
from tests.web.test_browser import Errors, open_page, sign_in


def launch_config() -> str:
    start = (utcnow() - timedelta(days=3)).replace(microsecond=0).isoformat()
    return (
        "web:\n  live_check_interval: 300ms\n  poll_interval: 1s\n"
        "launches:\n"
        "  - name: checkout-v2\n"
        f"    start: {start}\n"
        "    routes: [payment-status]\n"
        "    roster:\n"
        "      exit_approval: {responsible: [lee], accountable: cto}\n"
        "    slos:\n"
        "      - {name: status-availability, route: payment-status, target: 99.5}\n"
        "    exit_criteria:\n"
        "      - no_open: [P1, P2]\n"
        "      - tickets_per_day: {max: 5, trending: any}\n"
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    require_chromium()
    with running_console(
        tmp_path_factory.mktemp("launch"), launch_config(), args=("--workers", "0")
    ) as live:
        yield live


@pytest.fixture(scope="module")
def chromium(server: LiveServer) -> Iterator[Browser]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=require_chromium(), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def errors() -> Errors:
    return Errors()


def test_scorecard_turns_green_when_the_blocker_is_resolved(
    chromium: Browser, server: LiveServer, errors: Errors
) -> None:
    responder = server.token("responder", "launch-responder")
    r = server.api(
        "POST",
        "/issues",
        responder,
        json={"title": "payment status 503", "priority": "P2", "route": "payment-status"},
    )
    assert r.status_code == 201, r.text
    iid = r.json()["id"]

    page = open_page(chromium, errors)
    sign_in(page, server, responder)
    tile = page.locator("#launch-now-list")
    expect(tile).to_contain_text("checkout-v2")
    expect(tile).to_contain_text("not ready")
    expect(tile).to_contain_text("1 of 2 exit criteria pass")
    tile.get_by_role("link", name="checkout-v2").click()
    expect(page).to_have_url(re.compile(r"/launches/checkout-v2$"))

    scorecard = page.locator("#scorecard")
    blocker = scorecard.locator("tr", has_text="no open P1/P2 issue")
    expect(blocker).to_contain_text("FAIL")
    expect(blocker.get_by_role("link", name=f"/issues/{iid}")).to_be_visible()
    expect(page.locator("#slos")).to_contain_text("status-availability")
    expect(page.locator("#roster")).to_contain_text("exit approval")

    for step in ("triaged", "resolved"):
        r = server.api("POST", f"/issues/{iid}/transitions", responder, json={"to": step})
        assert r.status_code == 200, r.text
    page.reload()
    expect(blocker).to_contain_text("PASS")
    expect(scorecard.locator("h2")).to_contain_text("ready to exit: 2/2")
    expect(page.locator("#history")).to_contain_text("2/2")

    page.get_by_role("link", name="final").click()
    expect(page.get_by_role("heading", name="Post-hypercare report: checkout-v2")).to_be_visible()
    expect(page.locator("svg.budget, p.empty").first).to_be_visible()
    page.context.close()
    assert errors == []
