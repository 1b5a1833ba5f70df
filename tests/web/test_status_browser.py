"""The public status page in a real browser (Debian's Chromium via Playwright) against
`hypercare up`: readable without sign-in or JavaScript, no CSP violation, fine on a phone,
text contrast at least WCAG AA, and an incident turning the page to a major outage."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from tests.support import wait_until
from tests.web.live_server import CHROMIUM_ARGS, LiveServer, require_chromium, running_console

CONFIG = """
web:
  live_check_interval: 300ms
status:
  page: {name: Acme status}
  components:
    - {name: Payments, description: Card payments, group: Checkout, routes: [payment-status]}
    - {name: Search, routes: [catalog-search]}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    require_chromium()
    with running_console(tmp_path_factory.mktemp("status"), CONFIG, ("--workers", "0")) as live:
        yield live


@pytest.fixture(scope="module")
def chromium(server: LiveServer) -> Iterator[Browser]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=require_chromium(), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_page(chromium: Browser, errors: list[str], width: int = 1280, js: bool = True) -> Page:
    context = chromium.new_context(viewport={"width": width, "height": 900}, java_script_enabled=js)
    page = context.new_page()
    page.set_default_timeout(30_000)

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            errors.append(msg.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return page


def _luminance(rgb: str) -> float:
    r, g, b = (int(x) / 255 for x in re.findall(r"\d+", rgb)[:3])

    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)


def contrast(fg: str, bg: str) -> float:
    a, b = sorted((_luminance(fg), _luminance(bg)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def test_public_page_without_javascript_or_sign_in(chromium: Browser, server: LiveServer) -> None:
    errors: list[str] = []
    page = open_page(chromium, errors, js=False)
    page.goto(server.url + "/status")
    expect(page).to_have_url(server.url + "/status")  # no sign-in redirect
    expect(page.get_by_role("heading", level=1)).to_have_text("All Systems Operational")
    expect(page.get_by_text("Payments", exact=True)).to_be_visible()
    expect(page.get_by_text("share of that day", exact=False)).to_be_visible()
    page.get_by_role("link", name="History").click()
    expect(page.get_by_role("heading", name="Incident history")).to_be_visible()
    assert errors == []


def test_contrast_and_phone_layout(chromium: Browser, server: LiveServer) -> None:
    errors: list[str] = []
    page = open_page(chromium, errors, width=360)
    page.goto(server.url + "/status")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    for selector in (".cstate", ".cname", ".uptime", ".definition", "nav a", ".overall h1"):
        el = page.locator(selector).first
        fg = el.evaluate("e => getComputedStyle(e).color")
        bg = el.evaluate(
            """e => { for (let n = e; n; n = n.parentElement) {
                 const c = getComputedStyle(n).backgroundColor;
                 if (c && c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') return c; }
               return 'rgb(255, 255, 255)'; }"""
        )
        assert contrast(fg, bg) >= 4.5, (selector, fg, bg)
    assert errors == []  # a CSP violation would be reported here


def test_incident_turns_the_page_to_major_outage_and_back(
    chromium: Browser, server: LiveServer
) -> None:
    responder = server.token("responder", "status-browser")
    r = server.api(
        "POST",
        "/status/incidents",
        responder,
        json={"name": "Payments down", "components": ["Payments"], "body": "Looking into it."},
    )
    assert r.status_code == 201, r.text
    incident = r.json()["id"]
    r = server.api(
        "POST",
        f"/status/incidents/{incident}/updates",
        responder,
        json={
            "status": "identified",
            "body": "Cause found.",
            "affected": [{"component": "Payments", "status": "major_outage"}],
        },
    )
    assert r.status_code == 201, r.text
    errors: list[str] = []
    page = open_page(chromium, errors)

    def shows(text: str) -> bool:
        page.goto(server.url + "/status")
        return text in (page.locator("h1").first.text_content() or "")

    wait_until(
        lambda: shows("Major System Outage"), 30, "the page to show a major outage", interval=0.5
    )
    expect(page.get_by_role("heading", name="Active incidents")).to_be_visible()
    expect(page.get_by_text("Cause found.")).to_be_visible()
    expect(page.locator('[data-status="major_outage"]')).to_have_text("Major outage")
    r = server.api(
        "POST",
        f"/status/incidents/{incident}/updates",
        responder,
        json={
            "status": "resolved",
            "body": "All good.",
            "affected": [{"component": "Payments", "status": "operational"}],
        },
    )
    assert r.status_code == 201, r.text
    wait_until(lambda: shows("All Systems Operational"), 30, "the page to recover", interval=0.5)
    page.get_by_role("link", name="History").click()
    expect(page.get_by_text("All good.")).to_be_visible()
    assert errors == []
