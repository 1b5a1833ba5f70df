"""Take the console screenshots in docs/img/ (re-run after changing the pages).

Seeds a fresh store with two days of issues, starts `hypercare up` on loopback, signs in
with Debian's Chromium through Playwright and saves PNGs of the main pages, on a laptop
and on a phone screen. Run from the repository root:

    .venv/bin/python scripts/screenshots.py            # seeded pages, then the demo
    .venv/bin/python scripts/screenshots.py --demo     # only the demo pages

The pages that show telemetry, signals and detection (overview, APIs, a route, the issue
with linked signals, feedback, integrations, handover) are taken from `hypercare up --demo`
about three minutes in, once its scripted payments incident has become a correlated issue.
"""

from __future__ import annotations

import asyncio
import re
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from playwright.sync_api import Page, sync_playwright  # noqa: E402
from tests.support import start_up, wait_until  # noqa: E402
from tests.web.live_server import CHROMIUM, CHROMIUM_ARGS, running_console  # noqa: E402

from web_seed import seed  # noqa: E402

OUT = ROOT / "docs" / "img"


def sign_in(page: Page, url: str, token: str) -> None:
    page.goto(url + "/signin")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(url + "/")


DEMO_WAIT = 175.0  # seconds after start: the incident at 45 s is verified by ~150 s


def demo_shots() -> None:
    """Start `hypercare up --demo`, wait for its incident, and shoot the part pages."""
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        up = start_up(Path(tmp) / "data", args=["--demo"], timeout=60)
        url = up.url
        try:

            def demo_token() -> str:
                if up.proc.poll() is not None:
                    raise SystemExit("hypercare up --demo failed:\n" + up.output())
                m = re.search(r"sign in at \S+ with (\S+)", up.output())
                return m.group(1) if m else ""

            token = wait_until(demo_token, 60, "the demo's admin token")
            while time.monotonic() - started < DEMO_WAIT:  # the scripted incident's timeline
                time.sleep(1)
            auth = {"Authorization": f"Bearer {token}"}
            issues = httpx.get(
                f"{url}/api/v1/issues", params={"priority": "P1"}, headers=auth, timeout=10
            ).json()
            items = issues["items"] if isinstance(issues, dict) else issues
            issue = items[0]["id"] if items else 1
            route = items[0].get("route") if items else None
            shoot(
                url,
                token,
                [
                    ("console-overview.png", "/", {"width": 1360, "height": 1100}),
                    ("console-apis.png", "/apis?range=15m", {"width": 1360, "height": 700}),
                    (
                        "console-route.png",
                        f"/apis/{route or 'payment-status'}?range=15m",
                        {"width": 1360, "height": 1100},
                    ),
                    (
                        "console-issue-signals.png",
                        f"/issues/{issue}",
                        {"width": 1360, "height": 2300},
                    ),
                    ("console-feedback.png", "/feedback", {"width": 1360, "height": 1100}),
                    ("console-integrations.png", "/integrations", {"width": 1360, "height": 800}),
                    ("console-handover.png", "/handover", {"width": 1360, "height": 1000}),
                    ("console-overview-phone.png", "/", {"width": 390, "height": 844}),
                ],
            )
        finally:
            up.stop(timeout=20)


def shoot(url: str, token: str, shots: list[tuple[str, str, dict[str, int]]]) -> None:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for name, path, viewport in shots:
            context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
            page = context.new_page()
            sign_in(page, url, token)
            page.goto(url + path)
            page.wait_for_selector("#live-status[data-state='live']")
            if path == "/integrations":
                # show a created integration and a test event's signal
                page.get_by_label("Name").fill("Prometheus prod")
                page.get_by_role("button", name="Create").click()
                page.get_by_role("button", name="Send a test event to Prometheus prod").click()
                page.wait_for_selector("#tested")
            # fragments fetched after the page (API health tiles, a route's charts)
            page.wait_for_selector("[aria-busy='true']", state="detached", timeout=20_000)
            page.wait_for_timeout(500)  # let uPlot draw
            page.screenshot(path=str(OUT / name), full_page=False)
            context.close()
            print(f"wrote {OUT / name}")
        browser.close()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    if "--demo" in sys.argv:
        demo_shots()
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        last = asyncio.run(seed(data, 60, days=2, rng_seed=11))
        with running_console(data) as server, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            shots = [
                ("console-triage.png", "/triage", {"width": 1360, "height": 900}),
                ("console-issue.png", f"/issues/{last - 3}", {"width": 1360, "height": 1100}),
                ("console-new-issue.png", "/issues/new", {"width": 1360, "height": 900}),
                ("console-triage-phone.png", "/triage", {"width": 390, "height": 844}),
            ]
            for name, path, viewport in shots:
                context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
                page = context.new_page()
                sign_in(page, server.url, server.admin_token)
                page.goto(server.url + path)
                page.wait_for_selector("#live-status[data-state='live']")
                if path == "/triage" and viewport["width"] > 800:
                    page.keyboard.press("j")
                    page.keyboard.press("j")
                page.screenshot(path=str(OUT / name), full_page=False)
                context.close()
                print(f"wrote {OUT / name}")
            browser.close()
    demo_shots()


if __name__ == "__main__":
    main()
