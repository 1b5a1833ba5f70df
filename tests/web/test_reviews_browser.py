"""Post-incident reviews and runbooks in Chromium against `hypercare up`: a P2 resolved
through the API gets its review drafted by the running product; a responder writes it,
adds an action item and publishes it; a runbook added through the form shows on the
issue page and in search."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.support import wait_until
from tests.web.live_server import CHROMIUM_ARGS, LiveServer, require_chromium, running_console
from tests.web.test_browser import Errors, open_page, sign_in


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    require_chromium()
    config = "review:\n  poll_interval: 250ms\n"
    with running_console(tmp_path / "console", config, args=("--workers", "0")) as live:
        yield live


def test_review_written_and_published_and_runbook_on_the_issue_page(server: LiveServer) -> None:
    responder = server.token("responder", "responder-in-browser")
    r = server.api(
        "POST",
        "/issues",
        responder,
        json={"title": "Checkout payments fail", "priority": "P2", "component": "payments"},
    )
    issue_id = r.json()["id"]
    for to in ("triaged", "resolved"):
        assert server.api(
            "POST", f"/issues/{issue_id}/transitions", responder, json={"to": to}
        ).is_success

    def drafted() -> dict[str, Any] | None:
        r = server.api("GET", f"/issues/{issue_id}/review", responder)
        return r.json() if r.status_code == 200 else None

    review_id = wait_until(drafted, 60, "the drafted review")["id"]
    errors = Errors()
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=require_chromium(), args=CHROMIUM_ARGS)
        try:
            page = open_page(chromium, errors)
            sign_in(page, server, responder, "/reviews")
            page.get_by_role("link", name=re.compile("Checkout payments fail")).click()
            expect(page).to_have_url(re.compile(rf"/reviews/{review_id}$"))
            page.wait_for_load_state("load")  # its scripts (htmx) have run
            expect(page.locator("#review-state")).to_have_text("draft")
            page.get_by_label("Root cause").fill("The payments pool was too small")
            page.get_by_label("What went well").fill("Paged within a minute")
            page.get_by_role("button", name="Save").click()
            page.get_by_label("New action item").fill("Alert on pool saturation")
            page.get_by_role("button", name="Add action item").click()
            expect(page.locator(".action-items")).to_contain_text("Alert on pool saturation")
            for state in ("in_review", "published"):
                page.get_by_label("Move to").select_option(state)
                page.get_by_role("button", name="Move").click()
                expect(page.locator("#review-state")).to_have_text(state.replace("_", " "))
            expect(page.locator("#analysis")).to_contain_text("The payments pool was too small")

            page.goto(f"{server.url}/runbooks")
            page.get_by_label("Name (lowercase slug)").fill("payments-pool")
            page.locator("#new-title").fill("Payments pool exhausted")
            page.locator("#new-components").fill("payments")
            page.locator("#new-body").fill("1. Raise the **pool** size\n2. Restart the poller")
            page.get_by_role("button", name="Add runbook").click()
            expect(page.locator("#runbook-payments-pool strong")).to_have_text("pool")

            page.get_by_role("searchbox").fill("poller")
            page.get_by_role("button", name="Search").click()
            expect(page.locator(".hits mark")).to_have_text("poller")

            page.goto(f"{server.url}/issues/{issue_id}")
            panel = page.get_by_role("region", name="Runbooks and past workarounds")
            expect(panel).to_contain_text("Payments pool exhausted")
            expect(
                panel.get_by_role("link", name=f"Post-incident review #{review_id}")
            ).to_be_visible()
        finally:
            chromium.close()
    assert errors == []
    items = server.api("GET", f"/reviews/{review_id}", responder).json()["action_items"]
    assert [(i["title"], i["priority"]) for i in items] == [("Alert on pool saturation", "P4")]
