"""On call through HTTP: who is on call at an instant, overrides, people, calendar feeds."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

from hypercare.api.state import AppState
from hypercare.auth.rules import Role
from hypercare.config import HypercareConfig, parse_config
from tests.conftest import auth

CONFIG = """
response:
  channels:
    - {name: ops-hook, type: webhook, url: 'http://127.0.0.1:9/hook'}
  people:
    - {name: ann, email: ann@example.com, time_zone: Europe/Berlin}
    - name: bob
      time_zone: America/New_York
      contacts: [{type: webhook, url: 'http://127.0.0.1:9/bob?token=s3cret'}]
  schedules:
    - name: primary
      time_zone: America/New_York
      layers:
        - {rotation: daily, handoff: '02:30', start: 2026-03-01, members: [ann, bob]}
    - name: eu, time_zone: Europe/Berlin
"""
CONFIG = CONFIG.replace(
    "    - name: eu, time_zone: Europe/Berlin\n",
    "    - name: eu\n      time_zone: Europe/Berlin\n      layers:\n"
    "        - {rotation: weekly, handoff: '09:00', start: 2026-10-05, members: [bob, ann]}\n",
)


@pytest.fixture
def config() -> HypercareConfig:
    return parse_config(CONFIG, "test.yaml")


async def test_who_is_on_call_at_an_instant_across_spring_forward(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    r = await client.get(
        "/api/v1/oncall",
        params={"at": "2026-03-08T06:59:00Z", "count": 2},
        headers=auth(tokens[Role.viewer]),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    primary = next(s for s in body["schedules"] if s["schedule"] == "primary")
    # 2026-03-07 02:30 EST (turn 6 from 03-01: ann) to the jump on the 8th (02:30 is skipped)
    assert primary["on_call"]["person"] == "ann"
    assert primary["on_call"]["start"].startswith("2026-03-07T07:30")
    assert primary["on_call"]["end"].startswith("2026-03-08T07:00")
    assert [s["start"][:16] for s in primary["next"]] == ["2026-03-07T07:30", "2026-03-08T07:00"]
    assert [s["person"] for s in primary["next"]] == ["ann", "bob"]
    eu = next(s for s in body["schedules"] if s["schedule"] == "eu")
    # before its first turn (2026-10-05), further away than the 60 days looked ahead
    assert eu["on_call"] is None and eu["next"] == []


@pytest.mark.parametrize("at", ["yesterday", "2026-03-08T07:00:00", "2026-13-01T00:00Z"])
async def test_bad_instants_are_422(
    client: httpx.AsyncClient, tokens: dict[Role, str], at: str
) -> None:
    r = await client.get("/api/v1/oncall", params={"at": at}, headers=auth(tokens[Role.viewer]))
    assert r.status_code == 422
    assert "at" in r.json()["error"]["message"]


async def test_override_api_changes_who_is_on_call(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    body = {"person": "ann", "start": "2027-01-10T12:00:00Z", "end": "2027-01-10T18:00:00Z"}
    r = await client.post(
        "/api/v1/oncall/schedules/eu/overrides", json=body, headers=auth(tokens[Role.viewer])
    )
    assert r.status_code == 403
    r = await client.post(
        "/api/v1/oncall/schedules/eu/overrides",
        json=body | {"note": "swap"},
        headers=auth(tokens[Role.responder]),
    )
    assert r.status_code == 201, r.text
    override_id = r.json()["id"]
    r = await client.get(
        "/api/v1/oncall",
        params={"at": "2027-01-10T13:00:00Z"},
        headers=auth(tokens[Role.viewer]),
    )
    eu = next(s for s in r.json()["schedules"] if s["schedule"] == "eu")
    assert (eu["on_call"]["person"], eu["on_call"]["layer"]) == ("ann", "override")
    r = await client.get(
        "/api/v1/oncall/schedules/eu/shifts",
        params={"start": "2027-01-10T00:00:00Z", "days": 1},
        headers=auth(tokens[Role.viewer]),
    )
    assert [s["layer"] for s in r.json()] == ["layer 1", "override", "layer 1"]
    r = await client.delete(
        f"/api/v1/oncall/overrides/{override_id}", headers=auth(tokens[Role.responder])
    )
    assert r.status_code == 200
    r = await client.get("/api/v1/oncall/schedules/eu/overrides", headers=auth(tokens[Role.viewer]))
    assert r.json() == []


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        (
            "eu",
            {"person": "zed", "start": "2027-01-10T12:00Z", "end": "2027-01-10T13:00Z"},
            422,
            "unknown person",
        ),
        (
            "eu",
            {"person": "ann", "start": "2027-01-10T12:00Z", "end": "2027-01-10T11:00Z"},
            422,
            "after",
        ),
        (
            "eu",
            {"person": "ann", "start": "2027-01-10T12:00Z", "end": "2027-06-10T11:00Z"},
            422,
            "90 days",
        ),
        (
            "eu",
            {"person": "ann", "start": "2027-01-10T12:00", "end": "2027-01-10T13:00"},
            422,
            "timezone",
        ),
        (
            "nope",
            {"person": "ann", "start": "2027-01-10T12:00Z", "end": "2027-01-10T13:00Z"},
            404,
            "no schedule",
        ),
    ],
)
async def test_bad_overrides_are_refused(
    client: httpx.AsyncClient,
    tokens: dict[Role, str],
    path: str,
    body: dict[str, str],
    status: int,
    needle: str,
) -> None:
    r = await client.post(
        f"/api/v1/oncall/schedules/{path}/overrides",
        json=body,
        headers=auth(tokens[Role.responder]),
    )
    assert r.status_code == status, r.text
    assert needle in r.text


async def test_people_hide_contact_urls_and_link_their_feed(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    r = await client.get("/api/v1/people", headers=auth(tokens[Role.viewer]))
    assert r.status_code == 200
    people = {p["name"]: p for p in r.json()}
    assert people["bob"]["contacts"] == [
        {"type": "webhook", "channel": None, "target": None, "url_host": "127.0.0.1"}
    ]
    assert "s3cret" not in r.text
    assert sorted(people["ann"]["schedules"]) == ["eu", "primary"]
    # the feed opens with its key and without a token, like a calendar app does
    feed = people["ann"]["ical_path"]
    r = await client.get(feed)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/calendar")
    text = r.text
    assert text.startswith("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n")
    assert text.endswith("END:VCALENDAR\r\n")
    assert "SUMMARY:On call: ann (primary)" in text
    assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))


async def test_calendar_feed_auth(client: httpx.AsyncClient, tokens: dict[Role, str]) -> None:
    r = await client.get("/api/v1/oncall/schedules", headers=auth(tokens[Role.viewer]))
    primary = next(s for s in r.json() if s["name"] == "primary")
    path = primary["ical_path"]
    assert urlsplit(path).path == "/api/v1/oncall/schedules/primary.ics"
    assert (await client.get(path)).status_code == 200
    # the key of one feed opens no other
    other = path.replace("primary.ics", "eu.ics")
    assert (await client.get(other)).status_code == 401
    assert (await client.get("/api/v1/oncall/schedules/primary.ics")).status_code == 401
    r = await client.get("/api/v1/oncall/schedules/primary.ics", headers=auth(tokens[Role.viewer]))
    assert r.status_code == 200 and "BEGIN:VEVENT" in r.text
    assert (await client.get("/api/v1/oncall/schedules/none.ics")).status_code == 404


async def test_policies_are_listed(
    client: httpx.AsyncClient, tokens: dict[Role, str], state: AppState
) -> None:
    r = await client.get("/api/v1/response/policies", headers=auth(tokens[Role.viewer]))
    assert r.status_code == 200 and r.json() == []


def test_feed_shifts_start_whole_so_uids_stay_stable() -> None:
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    from hypercare.response.oncall import Layer, Schedule
    from hypercare.response.views import feed_shifts

    sched = Schedule(
        "s",
        ZoneInfo("UTC"),
        (Layer("l", ("ann", "bob"), datetime(2026, 1, 1, 9), timedelta(days=1)),),
    )
    end = datetime(2026, 1, 20, tzinfo=UTC)
    one = feed_shifts(sched, [], datetime(2026, 1, 5, 10, tzinfo=UTC), end)
    two = feed_shifts(sched, [], datetime(2026, 1, 5, 17, 33, tzinfo=UTC), end)
    assert one[0].start == two[0].start == datetime(2026, 1, 5, 9, tzinfo=UTC)
    assert one == two


FILE_OVERRIDES = CONFIG.replace(
    "        - {rotation: daily, handoff: '02:30', start: 2026-03-01, members: [ann, bob]}\n",
    "        - {rotation: daily, handoff: '02:30', start: 2026-03-01, members: [ann, bob]}\n"
    "      overrides:\n"
    "        - {person: bob, start: '2026-03-07T12:00:00', end: '2026-03-07T18:00:00'}\n",
)


@pytest.mark.parametrize("config", [parse_config(FILE_OVERRIDES, "test.yaml")])
async def test_overrides_written_in_the_config_file_count(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    async def who(at: str) -> str:
        r = await client.get("/api/v1/oncall", params={"at": at}, headers=auth(tokens[Role.viewer]))
        assert r.status_code == 200, r.text
        primary = next(s for s in r.json()["schedules"] if s["schedule"] == "primary")
        person: str = primary["on_call"]["person"]
        return person

    # local New York times: 12:00 EST is 17:00 UTC
    assert await who("2026-03-07T16:59:00Z") == "ann"
    assert await who("2026-03-07T17:00:00Z") == "bob"
    assert await who("2026-03-07T23:00:00Z") == "ann"


def test_config_overrides_are_checked() -> None:
    from hypercare.errors import ConfigError

    with pytest.raises(ConfigError, match=r"overrides\[0\].person.*unknown person 'eve'"):
        parse_config(FILE_OVERRIDES.replace("person: bob, start", "person: eve, start"), "t.yaml")
    with pytest.raises(ConfigError, match=r"overrides\[0\].*does not exist in America/New_York"):
        parse_config(
            FILE_OVERRIDES.replace("2026-03-07T12:00:00", "2026-03-08T02:30:00").replace(
                "2026-03-07T18:00:00", "2026-03-08T09:00:00"
            ),
            "t.yaml",
        )
    with pytest.raises(ConfigError, match="must be after"):
        parse_config(FILE_OVERRIDES.replace("T18:00", "T11:00"), "t.yaml")
