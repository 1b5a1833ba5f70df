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
    page.wait_for_load_state("load")  # its scripts (htmx) have run

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


def test_new_launch_and_state_change_forms(
    chromium: Browser, server: LiveServer, errors: Errors
) -> None:
    viewer = server.token("viewer", "launch-viewer")
    page = open_page(chromium, errors)
    sign_in(page, server, viewer, "/launches")
    expect(page.get_by_role("cell", name="checkout-v2")).to_be_visible()
    expect(page.locator("#new-launch")).to_have_count(0)
    page.goto(server.url + "/launches/checkout-v2")
    expect(page.locator("#scorecard")).to_be_visible()
    expect(page.locator("#state")).to_have_count(0)
    page.context.close()

    responder = server.token("responder", "launch-editor")
    page = open_page(chromium, errors)
    sign_in(page, server, responder, "/launches")
    form = page.locator("#new-launch")
    form.get_by_text("New launch").click()
    start = (utcnow() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    form.get_by_label("Name").fill("app-v5")
    form.get_by_label("Start").fill(start)
    form.get_by_label("Routes").fill("payment-status")
    form.get_by_label("Objectives").fill("checkout p95 under 400 ms\nno P1 for a week")
    form.get_by_label("Exit criteria").fill("- no_open: [P1, P9]\n")
    form.get_by_role("button", name="Create launch").click()
    # refused in place: the message names the field, what was typed is kept
    alert = page.locator("#launch-errors")
    expect(alert).to_contain_text("exit_criteria.0.no_open.1: unknown priority 'P9'")
    expect(page.get_by_label("Name")).to_have_value("app-v5")
    page.get_by_label("Exit criteria").fill("- no_open: [P1]\n- no_new: {priority: [P1], for: 1h}")
    page.get_by_role("button", name="Create launch").click()
    expect(page).to_have_url(re.compile(r"/launches/app-v5$"))
    page.wait_for_load_state("load")  # its scripts (htmx) have run
    expect(page.locator(".launch-meta")).to_contain_text("made through the API")
    expect(page.locator(".launch-state")).to_have_text("active")
    expect(page.locator("#kpis")).to_contain_text("no P1 for a week")
    expect(page.locator("#scorecard")).to_contain_text("no open P1 issue")

    # extending needs a new end: refused in place, then done
    state = page.locator("#state")
    state.get_by_label("Move to").select_option("extended")
    state.get_by_label("Note").fill("two more weeks")
    state.get_by_role("button", name="Change state").click()
    expect(page.locator("#state-error")).to_contain_text("needs a new end")
    expect(page.locator("#state").get_by_label("Note")).to_have_value("two more weeks")
    end = (utcnow() + timedelta(days=14)).strftime("%Y-%m-%dT%H:%M")
    page.locator("#state").get_by_label("New end").fill(end)
    page.locator("#state").get_by_role("button", name="Change state").click()
    expect(page.locator(".launch-state")).to_have_text("extended")
    expect(page.locator(".launch-state-history")).to_contain_text("active → extended")
    page.locator("#state").get_by_label("Move to").select_option("exit_review")
    page.locator("#state").get_by_role("button", name="Change state").click()
    expect(page.locator(".launch-state")).to_have_text("exit review")

    r = server.api("GET", "/launches/app-v5", responder)
    assert r.json()["source"] == "api" and r.json()["state"] == "exit_review"
    assert r.json()["state_history"][0]["note"] == "two more weeks"
    page.goto(server.url + "/launches")
    expect(page.locator("tr", has_text="app-v5")).to_contain_text("API")
    expect(page.locator("tr", has_text="checkout-v2")).to_contain_text("config file")
    page.context.close()
    # the two refused forms answered 422 and 409, which Chromium reports; nothing else
    assert [e for e in errors if "status of 422" not in e and "status of 409" not in e] == []
