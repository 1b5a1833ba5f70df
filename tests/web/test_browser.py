"""The console in a real browser: Debian's Chromium driven by Playwright against
`hypercare up` running as a subprocess on loopback."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from tests.web.live_server import CHROMIUM_ARGS, LiveServer, require_chromium, running_console


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    require_chromium()
    with running_console(tmp_path_factory.mktemp("console")) as live:
        yield live


@pytest.fixture(scope="module")
def chromium(server: LiveServer) -> Iterator[Browser]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=require_chromium(), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def tokens(server: LiveServer) -> dict[str, str]:
    return {
        role: server.token(role, f"{role}-in-browser")
        for role in ("viewer", "support", "responder")
    }


class Errors(list[str]):
    """Console errors and uncaught exceptions of a page: every test ends with none."""


@pytest.fixture
def errors() -> Errors:
    return Errors()


def open_page(chromium: Browser, errors: Errors) -> Page:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)  # a busy shared machine: Chromium can be slow

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            errors.append(msg.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return page


def sign_in(page: Page, server: LiveServer, token: str, path: str = "/") -> None:
    page.goto(server.url + path)
    expect(page).to_have_url(re.compile(r"/signin\?next="))
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(server.url + path)
    # the URL changes when the page starts arriving; its deferred scripts (htmx) run before
    # "load": a form clicked earlier is submitted the no-JS way, a full-page answer
    page.wait_for_load_state("load")


def test_sign_in_and_out(chromium: Browser, server: LiveServer, errors: Errors) -> None:
    page = open_page(chromium, errors)
    page.goto(server.url + "/")
    page.get_by_label("API token").fill("hc_wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    page.get_by_label("API token").fill(server.admin_token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Launch at a glance")).to_be_visible()
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["hc_session"]["httpOnly"] and server.admin_token not in str(cookies)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.context.close()
    # the refused sign-in answered 401, which Chromium reports; nothing else went wrong
    assert [e for e in errors if "status of 401" not in e] == []


def test_overview_shows_an_issue_created_through_the_api_without_reload(
    chromium: Browser, server: LiveServer, tokens: dict[str, str], errors: Errors
) -> None:
    page = open_page(chromium, errors)
    sign_in(page, server, tokens["viewer"])
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    page.evaluate("window.__sameDocument = true")
    title = "Card payments time out (live test)"
    r = server.api("POST", "/issues", tokens["support"], json={"title": title, "priority": "P1"})
    assert r.status_code == 201
    expect(page.locator("#activity-list")).to_contain_text(title)
    expect(page.locator("#urgent-list")).to_contain_text(title)
    assert page.evaluate("window.__sameDocument") is True  # no reload happened
    # the swapped-in fragment's chart is drawn again (its data is not in a <script>)
    expect(page.locator("#flow-chart .uplot")).to_have_count(1)
    countdown = page.locator(f'[data-issue="{r.json()["id"]}"] .countdown')
    expect(countdown).to_have_text(re.compile(r"\d+m \d\ds left"))
    page.context.close()
    assert errors == []


def test_triage_keyboard_actions_change_the_issue(
    chromium: Browser, server: LiveServer, tokens: dict[str, str], errors: Errors
) -> None:
    r = server.api("POST", "/issues", tokens["support"], json={"title": "Keyboard triage target"})
    iid = r.json()["id"]
    page = open_page(chromium, errors)
    sign_in(page, server, tokens["responder"], "/triage")
    page.keyboard.press("/")
    page.keyboard.type("Keyboard triage")
    row = page.locator(f"#issue-{iid}")
    # the search has settled once the last request pushed its URL
    expect(page).to_have_url(re.compile(r"q=Keyboard%20triage&"))
    expect(page.locator("#queue tbody tr")).to_have_count(1)
    page.locator("#q").press("Escape")
    page.keyboard.press("j")
    expect(row).to_have_class(re.compile("selected"))
    page.keyboard.press("a")
    expect(row.locator("input.assign")).to_be_focused()
    page.keyboard.type("dana")
    page.keyboard.press("Enter")
    expect(page.locator("#flash")).to_contain_text("assigned to dana")
    page.locator(f"#pri-{iid}").select_option("P1")
    expect(row.locator(".pri")).to_have_text("P1")
    page.keyboard.press("Escape")
    page.keyboard.press("t")
    expect(page.locator(f"#to-{iid}")).to_be_focused()
    page.locator(f"#to-{iid}").select_option("investigating")
    page.locator(f"#issue-{iid}").get_by_role("button", name="Move").click()
    expect(row.locator(".status")).to_have_text("investigating")
    issue = server.api("GET", f"/issues/{iid}", tokens["viewer"]).json()
    assert (issue["assignee"], issue["priority"], issue["status"]) == (
        "dana",
        "P1",
        "investigating",
    )
    # closing without a reason is refused with a message; the row stays as it was
    page.locator(f"#to-{iid}").select_option("closed")
    row.get_by_role("button", name="Move").click()
    expect(page.locator("#flash")).to_contain_text("needs a 'reason'")
    expect(row.locator(".status")).to_have_text("investigating")
    page.context.close()
    assert [e for e in errors if "422" not in e] == []


def test_issue_page_shows_timeline_and_takes_comments(
    chromium: Browser, server: LiveServer, tokens: dict[str, str], errors: Errors
) -> None:
    r = server.api(
        "POST", "/issues", tokens["support"], json={"title": "Timeline check", "priority": "P2"}
    )
    iid = r.json()["id"]
    server.api("POST", f"/issues/{iid}/transitions", tokens["responder"], json={"to": "triaged"})
    page = open_page(chromium, errors)
    sign_in(page, server, tokens["responder"], f"/issues/{iid}")
    timeline = page.locator("#timeline-list")
    expect(timeline).to_contain_text("Issue opened as P2")
    expect(timeline).to_contain_text("new → triaged")
    page.get_by_label("Add a comment").fill("Looking at the pool metrics")
    page.get_by_role("button", name="Comment").click()
    expect(timeline).to_contain_text("Looking at the pool metrics")
    # a change made elsewhere shows up on the open page
    server.api("POST", f"/issues/{iid}/comments", tokens["support"], json={"text": "User confirms"})
    expect(timeline).to_contain_text("User confirms")
    page.context.close()
    assert errors == []


def test_viewer_gets_no_triage_controls(
    chromium: Browser, server: LiveServer, tokens: dict[str, str], errors: Errors
) -> None:
    page = open_page(chromium, errors)
    sign_in(page, server, tokens["viewer"], "/triage")
    expect(page.locator("#queue tbody tr").first).to_be_visible()
    expect(page.locator("#queue select, #queue input")).to_have_count(0)
    expect(page.get_by_role("link", name="New issue")).to_have_count(0)
    page.context.close()
    assert errors == []


def test_new_issue_form(
    chromium: Browser, server: LiveServer, tokens: dict[str, str], errors: Errors
) -> None:
    page = open_page(chromium, errors)
    sign_in(page, server, tokens["support"], "/issues/new")
    page.get_by_label("Title").fill("Export to CSV is empty")
    page.get_by_label("Priority").select_option("P2")
    page.get_by_label("Component").fill("reports")
    page.get_by_role("button", name="Create issue").click()
    expect(page).to_have_url(re.compile(r"/issues/\d+$"))
    page.wait_for_load_state("load")  # its scripts (htmx) have run
    expect(page.get_by_role("heading", level=1)).to_contain_text("Export to CSV is empty")
    page.context.close()
    assert errors == []


@pytest.mark.parametrize("path", ["/", "/triage", "/issues/1", "/issues/new"])
def test_pages_fit_a_phone_screen(
    chromium: Browser, server: LiveServer, tokens: dict[str, str], errors: Errors, path: str
) -> None:
    server.api("POST", "/issues", tokens["support"], json={"title": "A long enough title " * 4})
    context = chromium.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url + path)
    page.get_by_label("API token").fill(server.admin_token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("main h1").first).to_be_visible()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{path} is {overflow}px wider than a phone screen"
    context.close()
    assert errors == []


def test_overview_falls_back_to_polling_without_sse(
    chromium: Browser, server: LiveServer, tokens: dict[str, str], errors: Errors
) -> None:
    page = open_page(chromium, errors)
    page.add_init_script("delete window.EventSource")
    sign_in(page, server, tokens["viewer"])
    expect(page.locator("#live-status")).to_have_attribute("data-state", "polling")
    title = "Polling picks this up"
    r = server.api("POST", "/issues", tokens["support"], json={"title": title})
    assert r.status_code == 201
    expect(page.locator("#activity-list")).to_contain_text(title)
    page.context.close()
    assert errors == []


def test_apis_page_and_issue_with_linked_signals_and_charts(
    chromium: Browser, server: LiveServer, tokens: dict[str, str], errors: Errors
) -> None:
    r = server.api(
        "POST",
        "/feedback",
        tokens["support"],
        json={"type": "ticket", "subject": "Payment page spins", "url": "https://shop/pay"},
    )
    iid = r.json()["issues"][0]
    page = open_page(chromium, errors)
    sign_in(page, server, tokens["responder"], "/apis")
    expect(page.get_by_role("heading", name="APIs", exact=True)).to_be_visible()
    page.get_by_role("link", name="24h").click()
    expect(page).to_have_url(re.compile(r"range=24h"))
    page.wait_for_load_state("load")  # its scripts (htmx) have run
    page.goto(f"{server.url}/issues/{iid}")
    expect(page.locator("#linked-signals")).to_be_visible()
    expect(page.locator(".signal")).to_contain_text("Payment page spins")
    expect(page.get_by_role("button", name=re.compile("Split signal"))).to_be_visible()
    # the ticket's URL path matches no gateway route: no telemetry, so no route charts here
    expect(page.locator(".chart .uplot")).to_have_count(0)
    # nor does the gateway know that path as a route: its page is a 404 page, not empty
    # charts (test_browser_first_use.py draws a called route's charts)
    page.goto(f"{server.url}/apis//pay")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("No route named '/pay'")
    page.context.close()
    assert [e for e in errors if "404" not in e] == []


def test_a_test_event_shows_its_test_signal_and_opens_no_issue(
    chromium: Browser, server: LiveServer, errors: Errors
) -> None:
    def issue_count() -> int:
        total: int = server.api("GET", "/issues", server.admin_token).json()["total"]
        return total

    before = issue_count()
    page = open_page(chromium, errors)
    sign_in(page, server, server.admin_token, "/integrations")
    page.get_by_label("Type").select_option("datadog")
    page.get_by_label("Name").fill("Datadog prod")
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#created")).to_contain_text("only this once")
    row = page.get_by_role("row", name=re.compile("Datadog prod"))
    expect(row.locator(".last-event")).to_have_text("never")
    page.get_by_role("button", name="Send a test event to Datadog prod").click()
    tested = page.locator("#tested")
    expect(tested).to_contain_text("Test event sent to Datadog prod")
    expect(tested.locator(".label-test")).to_have_text("test")
    expect(tested).to_contain_text("Test event from the Hypercare console (datadog)")
    expect(tested).to_contain_text("(no issue)")
    expect(tested.get_by_role("link")).to_have_count(0)
    expect(row.locator(".last-event")).to_contain_text("(test): signal #")
    # the overview lists the signal, marked as a test
    page.goto(server.url + "/")
    latest = page.locator("#latest-signals-list li", has_text="(datadog)")
    expect(latest.locator(".label-test")).to_be_visible()
    page.context.close()
    assert issue_count() == before
    assert errors == []
