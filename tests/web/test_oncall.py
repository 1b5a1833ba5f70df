"""The console's on-call page and overview tile: schedules with their two-week timeline,
overrides added and removed through forms, people and policies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from hypercare.auth.rules import Role
from hypercare.config import HypercareConfig, parse_config
from hypercare.store.base import utcnow
from tests.web.conftest import Browser

Make = Callable[[Role], Awaitable[Browser]]

CONFIG = """
response:
  people:
    - {name: ann, full_name: Ann Example, time_zone: Europe/Berlin}
    - {name: bob, time_zone: America/New_York, quiet_hours: {from: '22:00', to: '07:00'}}
  schedules:
    - name: primary
      time_zone: Europe/Berlin
      layers:
        - {rotation: daily, handoff: '09:00', start: 2026-01-01, members: [ann]}
  policies:
    - name: p1-page
      levels: [P1]
      steps: [{notify: [primary], wait: 5m}]
"""


@pytest.fixture
def config() -> HypercareConfig:
    return parse_config(CONFIG, "test.yaml")


async def test_overview_tile_and_page_show_who_is_on_call(browser_for: Make) -> None:
    b = await browser_for(Role.viewer)
    home = await b.http.get("/")
    assert "On call now" in home.text and 'href="/oncall#schedule-primary"' in home.text
    assert "ann" in home.text
    tile = await b.http.get("/overview/oncall")
    assert tile.status_code == 200 and "ann" in tile.text
    page = await b.http.get("/oncall")
    assert page.status_code == 200
    assert 'id="schedule-primary"' in page.text
    assert page.text.count('class="oncall-bar') >= 1
    assert "Ann Example" in page.text and "22:00–07:00" in page.text
    assert "p1-page" in page.text
    # a viewer gets no override form
    assert 'action="/oncall/overrides"' not in page.text


async def test_overrides_through_the_console(browser_for: Make) -> None:
    viewer = await browser_for(Role.viewer)
    start = (utcnow() + timedelta(days=2)).astimezone(ZoneInfo("Europe/Berlin"))
    form = {
        "schedule": "primary",
        "person": "bob",
        "start": start.strftime("%Y-%m-%dT%H:00"),
        "end": (start + timedelta(hours=6)).strftime("%Y-%m-%dT%H:00"),
        "note": "swap",
    }
    assert (await viewer.post("/oncall/overrides", form)).status_code == 403
    b = await browser_for(Role.responder)
    r = await b.post("/oncall/overrides", form)
    assert r.status_code == 303, r.text
    page = await b.http.get("/oncall")
    assert "swap" in page.text and "is-override" in page.text
    bad = await b.post("/oncall/overrides", form | {"person": "zed"})
    assert bad.status_code == 422 and "unknown person" in bad.text
    bad = await b.post("/oncall/overrides", form | {"start": "soon"})
    assert bad.status_code == 422 and "not a date" in bad.text
    r = await b.http.get("/api/v1/oncall/schedules/primary/overrides")
    # the API needs a bearer token: the console's session cookie is not one
    assert r.status_code == 401
    oid = page.text.split('action="/oncall/overrides/', 1)[1].split("/", 1)[0]
    r = await b.post(f"/oncall/overrides/{oid}/delete", {})
    assert r.status_code == 303
    assert "swap" not in (await b.http.get("/oncall")).text
