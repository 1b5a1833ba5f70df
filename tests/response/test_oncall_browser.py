"""The on-call page in Chromium: who is on call, the timeline, an override added through
the form and removed again."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.web.live_server import CHROMIUM_ARGS, LiveServer, require_chromium, running_console


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    require_chromium()
    config = """\
response:
  people:
    - {name: ann, full_name: Ann Example, time_zone: Europe/Berlin}
    - {name: bob, full_name: Bob Example, time_zone: America/New_York}
  schedules:
    - name: primary
      time_zone: Europe/Berlin
      layers:
        - {rotation: daily, handoff: '09:00', start: 2026-01-01, members: [ann]}
"""
    with running_console(tmp_path / "console", config, args=("--workers", "0")) as live:
        yield live


def test_oncall_page_and_an_override(server: LiveServer) -> None:
    responder = server.token("responder", "responder-in-browser")
    start = datetime.now(ZoneInfo("Europe/Berlin")).replace(minute=0) + timedelta(days=1)
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=require_chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context().new_page()
            page.set_default_timeout(15_000)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{server.url}/oncall")
            page.get_by_label("API token").fill(responder)
            page.get_by_role("button", name="Sign in").click()
            expect(page).to_have_url(re.compile(r"/oncall"))
            page.wait_for_load_state("load")  # its scripts (htmx) have run
            section = page.get_by_role("region", name=re.compile("^primary"))
            expect(section.locator(".oncall-current")).to_contain_text("ann")
            expect(section.locator(".oncall-bar").first).to_contain_text("ann")

            section.get_by_label("Person").select_option("bob")
            section.get_by_label("From").fill(start.strftime("%Y-%m-%dT%H:%M"))
            section.get_by_label("Until").fill(
                (start + timedelta(hours=4)).strftime("%Y-%m-%dT%H:%M")
            )
            section.get_by_label("Note").fill("dentist swap")
            section.get_by_role("button", name="Add override").click()
            expect(page).to_have_url(re.compile(r"/oncall#schedule-primary"))
            page.wait_for_load_state("load")  # its scripts (htmx) have run
            section = page.get_by_role("region", name=re.compile("^primary"))
            expect(section.locator("table.oncall-overrides")).to_contain_text("dentist swap")
            expect(section.locator(".oncall-bar.is-override")).to_contain_text("bob")
            overrides = server.api("GET", "/oncall/schedules/primary/overrides", responder).json()
            assert [o["person"] for o in overrides] == ["bob"]
            assert overrides[0]["start"].startswith(
                start.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M")
            )

            section.get_by_role("button", name="Remove the override of bob").click()
            expect(page.get_by_role("region", name=re.compile("^primary"))).to_contain_text(
                "No override to come"
            )
        finally:
            browser.close()
    assert errors == []
