"""People, schedules and policies in the config file: valid files, and errors that name
the file and line."""

from datetime import UTC, datetime, time

import pytest

from hypercare.config import parse_config
from hypercare.errors import ConfigError
from hypercare.response.oncall import on_call
from hypercare.response.roster import schedule_of

ROSTER = """
response:
  channels:
    - {name: ops-slack, type: slack, url: 'http://127.0.0.1:9/slack'}
  people:
    - name: ann
      full_name: Ann Example
      email: ann@example.com
      time_zone: Europe/Paris
      contacts:
        - {type: email}
        - {type: slack, channel: ops-slack, target: '@ann'}
        - {type: webhook, url: 'http://127.0.0.1:9/ann'}
      token: ann-cli
      quiet_hours: {from: '22:00', to: '07:00'}
    - name: bob
      time_zone: America/New_York
  schedules:
    - name: primary
      time_zone: America/New_York
      layers:
        - name: nights
          rotation: weekly
          handoff: 18:00
          start: 2026-03-02
          members: [ann, bob]
        - name: office
          rotation: daily
          handoff: '09:00'
          start: 2026-03-02
          members: [bob]
          restrictions:
            - {days: [mon, tue, wed, thu, fri], from: '09:00', to: '18:00'}
  policies:
    - name: p1-page
      levels: [P1]
      repeat: 2
      steps:
        - {notify: [primary], wait: 5m}
        - {notify: [ann, ops-slack], wait: 10m}
  rules:
    - match: {priority: [P1]}
      notify: [p1-page]
"""


def test_a_full_roster_is_valid_and_computes() -> None:
    cfg = parse_config(ROSTER, "h.yaml").response
    ann = cfg.person("ann")
    assert ann is not None and ann.time_zone == "Europe/Paris"
    assert [c.type for c in ann.contacts] == ["email", "slack", "webhook"]
    primary = cfg.schedule("primary")
    assert primary is not None
    # an unquoted 18:00 is read by YAML 1.1 as the number 1080 and taken back
    assert primary.layers[0].handoff == "18:00"
    sched = schedule_of(primary)
    assert sched.layers[1].restrictions[0].start == time(9)
    # Tuesday 2026-03-03 10:00 EST: the office layer (bob) is on top
    now = on_call(sched, [], datetime(2026, 3, 3, 15, tzinfo=UTC))
    assert now is not None and (now.person, now.layer) == ("bob", "office")
    # Tuesday 20:00 EST: the nights layer, first week = ann
    later = on_call(sched, [], datetime(2026, 3, 4, 1, tzinfo=UTC))
    assert later is not None and (later.person, later.layer) == ("ann", "nights")
    assert cfg.target_names()["p1-page"] == "policy"
    assert cfg.target_names()["primary"] == "schedule"


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as err:
        parse_config(text, "h.yaml")
    return str(err.value)


def test_unknown_time_zone_names_file_and_line() -> None:
    msg = _error(
        ROSTER.replace(
            "time_zone: America/New_York\n      layers", "time_zone: Mars/Olympus\n      layers"
        )
    )
    assert msg.startswith(
        "h.yaml:20: response.schedules[0].time_zone: unknown time zone 'Mars/Olympus'"
    )


def test_a_first_handoff_that_does_not_exist_is_an_error() -> None:
    # 2026-03-08 02:30 is skipped in New York
    text = ROSTER.replace(
        "handoff: 18:00\n          start: 2026-03-02",
        "handoff: '02:30'\n          start: 2026-03-08",
    )
    msg = _error(text)
    assert msg.startswith(
        "h.yaml:25: response.schedules[0].layers[0].start: "
        "2026-03-08 02:30 does not exist in America/New_York"
    )
    assert "03:00" in msg


def test_unknown_person_in_a_schedule_names_file_and_line() -> None:
    msg = _error(ROSTER.replace("members: [ann, bob]", "members: [ann, zed]"))
    assert msg.startswith(
        "h.yaml:26: response.schedules[0].layers[0].members[1]: unknown person 'zed'"
    )
    assert "known: ann, bob" in msg


def test_unknown_target_in_a_policy_step_names_file_and_line() -> None:
    msg = _error(ROSTER.replace("notify: [ann, ops-slack]", "notify: [ann, nobody]"))
    assert msg.startswith(
        "h.yaml:40: response.policies[0].steps[1].notify[1]: "
        "unknown person, schedule or channel 'nobody'"
    )


def test_a_rule_may_notify_people_schedules_and_policies() -> None:
    cfg = parse_config(
        ROSTER.replace("notify: [p1-page]", "notify: [p1-page, ann, primary]"), "h.yaml"
    )
    assert cfg.response.rules[0].notify == ["p1-page", "ann", "primary"]


def test_contact_channel_must_exist_and_be_of_its_type() -> None:
    msg = _error(
        ROSTER.replace("{type: slack, channel: ops-slack", "{type: teams, channel: ops-slack")
    )
    assert msg.startswith(
        "h.yaml:12: response.people[0].contacts[1].channel: "
        "channel 'ops-slack' is a slack channel, not teams"
    )
    msg = _error(ROSTER.replace("channel: ops-slack, target", "channel: gone, target"))
    assert "h.yaml:12: response.people[0].contacts[1].channel: unknown channel 'gone'" in msg


@pytest.mark.parametrize(
    ("old", "new", "line", "needs"),
    [
        ("handoff: 18:00", "handoff: '25:00'", 24, "invalid time of day"),
        ("rotation: weekly", "rotation: hours", 22, "needs `turn`"),
        ("rotation: weekly", "rotation: fortnightly", 23, "daily"),
        ("days: [mon, tue", "days: [funday, tue", 33, "unknown day 'funday'"),
        ("from: '09:00', to: '18:00'", "from: '09:00', to: '09:00'", 33, "equal"),
        ("email: ann@example.com", "email: not-an-address", 8, "email"),
        ("time_zone: Europe/Paris", "time_zone: Paris", 9, "unknown time zone"),
        ("repeat: 2", "repeat: 0", 37, "repeat"),
    ],
)
def test_invalid_roster_values(old: str, new: str, line: int, needs: str) -> None:
    assert old in ROSTER
    msg = _error(ROSTER.replace(old, new, 1))
    assert msg.startswith(f"h.yaml:{line}: "), msg
    assert needs in msg


def test_names_share_one_namespace() -> None:
    msg = _error(ROSTER.replace("name: p1-page", "name: ann"))
    assert "repeated: ann" in msg
