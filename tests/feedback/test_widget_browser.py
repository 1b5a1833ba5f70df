"""widget.js in headless Chromium: posts from an allowed origin with the failed calls'
request ids; refused from another origin."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.feedback.procs import ADMIN_TOKEN, console, require_binary

CHROMIUM = "/usr/bin/chromium"
KEY = "wk_browsertest01"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def _page_server(console_base: list[str]) -> ThreadingHTTPServer:
    """A launched web app on loopback: one page embedding the widget, one failing API."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/api/orders":
                self.send_response(500)
                self.send_header("X-Request-Id", "req-failed-42")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            page = (
                "<!doctype html><html><body><h1>Shop</h1>"
                f'<script src="{console_base[0]}/widget.js" data-key="{KEY}"></script>'
                "</body></html>"
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *_: Any) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


@contextlib.contextmanager
def _serving(server: ThreadingHTTPServer) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_widget_in_chromium(tmp_path: Path) -> None:
    require_binary(CHROMIUM, "chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    base_holder: list[str] = []
    allowed_server, other_server = _page_server(base_holder), _page_server(base_holder)
    with _serving(allowed_server) as allowed, _serving(other_server) as other:
        config = f"""feedback:
  widget_keys:
    - key: {KEY}
      name: shop
      origins: ["{allowed}"]
"""
        with console(tmp_path, config) as base:
            base_holder.append(base)
            with sync_api.sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    page = browser.new_page()
                    page.goto(f"{allowed}/")
                    page.wait_for_function("window.HypercareFeedback !== undefined")
                    page.evaluate("fetch('/api/orders').catch(() => null)")
                    page.wait_for_function(
                        "window.HypercareFeedback.failedRequestIds().length === 1"
                    )
                    page.click("#hc-feedback-button")
                    page.select_option("#hc-feedback-form select[name=category]", "bug")
                    page.fill(
                        "#hc-feedback-form textarea[name=message]", "Orders page shows an error"
                    )
                    page.fill("#hc-feedback-form input[name=email]", "buyer@example.com")
                    page.select_option("#hc-feedback-form select[name=nps]", "4")
                    page.click("#hc-feedback-form button[type=submit]")
                    page.wait_for_function(
                        "document.getElementById('hc-feedback-status').textContent.length > 0"
                    )
                    assert "Thank you" in page.text_content("#hc-feedback-status")

                    page = browser.new_page()
                    page.goto(f"{other}/")
                    page.wait_for_function("window.HypercareFeedback !== undefined")
                    page.click("#hc-feedback-button")
                    page.fill("#hc-feedback-form textarea[name=message]", "from elsewhere")
                    page.click("#hc-feedback-form button[type=submit]")
                    page.wait_for_function(
                        "document.getElementById('hc-feedback-status').textContent.length > 0"
                    )
                    assert "Could not send" in page.text_content("#hc-feedback-status")
                finally:
                    browser.close()

            r = httpx.get(
                f"{base}/api/v1/signals",
                params={"kind": "user"},
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                timeout=5,
            )
            items = r.json()["items"]
            assert sorted(s["source"] for s in items) == ["bug", "nps"]
            bug = next(s for s in items if s["source"] == "bug")
            assert bug["request_ids"] == ["req-failed-42"]
            assert bug["labels"]["url"] == f"{allowed}/"
            assert "Chrome" in bug["labels"]["user_agent"]
            assert bug["user_ref"] == "buyer@example.com"
            assert next(s for s in items if s["source"] == "nps")["score"] == 4
