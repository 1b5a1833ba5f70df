"""The console's pages and forms take the same bounded ids and refuse NUL characters like
the API: out-of-range input is a 4xx, never a 500, on both stores."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from hypercare.auth.rules import Role
from tests.web.conftest import Browser, new_issue

HUGE = "9223372036854775808"


async def test_out_of_range_ids_and_nul_in_console_requests(
    browser_for: Callable[[Role], Awaitable[Browser]],
) -> None:
    admin = await browser_for(Role.admin)
    issue = await new_issue(admin)
    statuses = {
        "page": (await admin.http.get(f"/issues/{HUGE}")).status_code,
        "timeline": (await admin.http.get(f"/issues/{HUGE}/timeline")).status_code,
        "comment": (await admin.post(f"/issues/{HUGE}/comment", {"text": "x"})).status_code,
        "split": (await admin.post(f"/signals/{HUGE}/split", {})).status_code,
        "unlink": (await admin.post(f"/signals/{HUGE}/unlink", {})).status_code,
        "merge": (await admin.post(f"/issues/{HUGE}/merge", {"into": "1"})).status_code,
        "replay": (await admin.post(f"/feedback/rejected/{HUGE}/replay", {})).status_code,
        "nul comment": (
            await admin.post(f"/issues/{issue}/comment", {"text": "a\x00b"})
        ).status_code,
        "nul title": (await admin.post("/issues/new", {"title": "a\x00b"})).status_code,
    }
    assert statuses == dict.fromkeys(statuses, 422)
    r = await admin.http.get(f"/triage?offset={HUGE}")
    assert r.status_code == 200
