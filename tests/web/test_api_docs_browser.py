"""/api/v1/docs in a real browser with every other origin cut off: Swagger UI comes from the
product's own files and starts under the console's CSP (an inline script or a CDN asset
would show up as a console error or a blocked request)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Route, expect, sync_playwright

from tests.web.live_server import CHROMIUM_ARGS, LiveServer, require_chromium, running_console


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    require_chromium()
    with running_console(tmp_path_factory.mktemp("docs")) as live:
        yield live


def test_api_docs_render_offline(server: LiveServer) -> None:
    own = urlsplit(server.url).netloc
    elsewhere: list[str] = []
    errors: list[str] = []

    def offline(route: Route) -> None:
        if urlsplit(route.request.url).netloc == own:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=require_chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context().new_page()
            page.set_default_timeout(15_000)
            page.route("**/*", offline)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            response = page.goto(server.url + "/api/v1/docs")
            assert response is not None and response.status == 200
            assert "default-src 'self'" in response.headers["content-security-policy"]
            expect(page.locator(".swagger-ui .info .title")).to_contain_text("Hypercare")
            issues = page.locator(".opblock-summary-path", has_text="/api/v1/issues/{issue_id}")
            expect(issues.first).to_be_visible()
            # the bearer scheme is declared: Swagger UI offers to authorize
            expect(page.get_by_role("button", name="Authorize")).to_be_visible()
        finally:
            browser.close()
    assert elsewhere == []
    assert errors == []
