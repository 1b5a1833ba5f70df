"""Take the console screenshots in docs/img/ (re-run after changing the pages).

Seeds a fresh store with two days of issues, starts `hypercare up` on loopback, signs in
with Debian's Chromium through Playwright and saves PNGs of the main pages, on a laptop
and on a phone screen. Run from the repository root:

    .venv/bin/python scripts/screenshots.py
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from playwright.sync_api import Page, sync_playwright  # noqa: E402
from tests.web.live_server import CHROMIUM, CHROMIUM_ARGS, running_console  # noqa: E402

from web_seed import seed  # noqa: E402

OUT = ROOT / "docs" / "img"


def sign_in(page: Page, url: str, token: str) -> None:
    page.goto(url + "/signin")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(url + "/")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        last = asyncio.run(seed(data, 60, days=2, rng_seed=11))
        with running_console(data) as server, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            shots = [
                ("console-overview.png", "/", {"width": 1360, "height": 900}),
                ("console-triage.png", "/triage", {"width": 1360, "height": 900}),
                ("console-issue.png", f"/issues/{last - 3}", {"width": 1360, "height": 1100}),
                ("console-new-issue.png", "/issues/new", {"width": 1360, "height": 900}),
                ("console-overview-phone.png", "/", {"width": 390, "height": 844}),
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


if __name__ == "__main__":
    main()
