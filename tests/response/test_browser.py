"""The notification log on the issue page, in Chromium: states, replay, acknowledge."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.response.conftest import Receiver
from tests.support import wait_until
from tests.web.live_server import CHROMIUM_ARGS, LiveServer, require_chromium, running_console


@pytest.fixture
def server(tmp_path: Path, receiver: Receiver) -> Iterator[LiveServer]:
    require_chromium()
    config = f"""\
web: {{live_check_interval: 300ms, poll_interval: 1s}}
response:
  channels:
    - {{name: ops-hook, type: webhook, url: '{receiver.url}'}}
  rules:
    - {{match: {{priority: [P1]}}, notify: [ops-hook]}}
  dispatch: {{max_attempts: 1}}
"""
    with running_console(tmp_path / "console", config, args=("--workers", "0")) as live:
        yield live


def test_notification_log_replay_and_acknowledge(server: LiveServer, receiver: Receiver) -> None:
    receiver.status = 500  # the first delivery fails and, with one attempt allowed, dies
    responder = server.token("responder", "responder-in-browser")
    created = server.api(
        "POST", "/issues", responder, json={"title": "Card payments fail", "priority": "P1"}
    )
    issue_id = created.json()["id"]

    def state() -> str | None:
        rows = server.api("GET", f"/issues/{issue_id}/notifications", responder).json()
        return rows[0]["state"] if rows and rows[0]["state"] in ("sent", "dead") else None

    assert wait_until(state, 30, "the delivery to die") == "dead"
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=require_chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context().new_page()
            page.set_default_timeout(15_000)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{server.url}/issues/{issue_id}")
            page.get_by_label("API token").fill(responder)
            page.get_by_role("button", name="Sign in").click()
            expect(page).to_have_url(re.compile(rf"/issues/{issue_id}"))
            page.wait_for_load_state("load")  # its scripts (htmx) have run
            panel = page.get_by_role("region", name="Notifications")
            row = panel.locator("tr.delivery").first
            expect(row).to_contain_text("ops-hook")
            expect(row).to_contain_text("dead")
            expect(row).to_contain_text("HTTP 500")

            receiver.status = 204
            panel.get_by_role("button", name="Replay the notification to ops-hook").click()
            assert wait_until(state, 30, "the replay to be sent") == "sent"
            page.reload()
            expect(
                page.get_by_role("region", name="Notifications").locator("tr.delivery").first
            ).to_contain_text("sent")

            page.get_by_role("region", name="Notifications").get_by_role(
                "button", name="Acknowledge"
            ).click()
            expect(page.get_by_role("region", name="Notifications")).to_contain_text("Acknowledged")
            expect(page.locator("#timeline")).to_contain_text(
                "Acknowledged by responder-in-browser"
            )
        finally:
            browser.close()
    assert errors == []
    issue = server.api("GET", f"/issues/{issue_id}", responder).json()
    assert issue["acknowledged_at"] is not None
