"""The stakeholder digest: pure assembly and rendering, and its preview through the API."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from hypercare.api.app import build_state
from hypercare.api.state import AppState
from hypercare.auth.rules import Role
from hypercare.comms import digest
from hypercare.comms import jobs as comms_jobs
from hypercare.comms import service as comms_service
from hypercare.comms.digest import ApiFacts, DigestFacts, IssueFacts
from hypercare.config import HypercareConfig, parse_config
from hypercare.errors import ConfigError
from hypercare.feedback.models import Signal
from hypercare.response import jobs as response_jobs
from hypercare.response.channels import HttpNotifier, MemoryNotifier, Notifiers
from hypercare.triage import service as triage
from hypercare.triage.models import IssueCreate
from tests.conftest import auth

END = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
START = END - timedelta(hours=24)


def _issue(priority: str, sla: str, *, open_: bool = True, hours_ago: float = 2) -> IssueFacts:
    created = END - timedelta(hours=hours_ago)
    return IssueFacts(
        priority=priority,
        status="investigating" if open_ else "resolved",
        sla_state=sla,
        open=open_,
        created_at=created,
        impact_started_at=created - timedelta(minutes=5),
        detected_at=created,
        acknowledged_at=created + timedelta(minutes=2),
        resolved_at=None if open_ else created + timedelta(minutes=55),
    )


def test_digest_counts_medians_trends_and_renders_escaped() -> None:
    facts = DigestFacts(
        start=START,
        end=END,
        timezone="UTC",
        levels=["P1", "P2", "P3", "P4"],
        issues=[
            _issue("P1", "breached"),
            _issue("P2", "at_risk"),
            _issue("P2", "ok", open_=False),
            _issue("P3", "ok", hours_ago=48),  # open, opened before the period
        ],
        apis=[
            ApiFacts("payments", 1000, 0.1, 100),
            ApiFacts("orders|<b>", 500, 0.02, 10),
            ApiFacts("health", 50, 0.0, 0),
        ],
        tickets=12,
        tickets_before=4,
        scores=[("nps", 10), ("nps", 3), ("csat", 5), ("csat", 2)],
        scores_before=[("nps", 10), ("nps", 9)],
    )
    d = digest.digest(facts)
    assert d["open_issues"]["by_priority"]["P1"] == {"open": 1, "at_risk": 0, "breached": 1}
    assert d["open_issues"]["by_priority"]["P2"] == {"open": 1, "at_risk": 1, "breached": 0}
    assert d["open_issues"]["total"] == 3 and d["issues_opened"] == 3
    assert d["issues_resolved"] == 1
    assert d["mttx_median_seconds"] == {"mttd": 300.0, "mtta": 120.0, "mttr": 3600.0}
    assert [a["route"] for a in d["top_failing_apis"]] == ["payments", "orders|<b>"]
    assert d["tickets"]["trend"] == "+8.0 vs the period before"
    assert d["nps"]["score"] == 0.0 and d["nps"]["before"] == 100.0
    assert d["nps"]["trend"] == "-100.0 vs the period before"
    assert d["csat"]["trend"] == "no comparison"

    md = digest.to_markdown(d, "Shop launch")
    assert md.startswith("# Shop launch\n")
    assert "| P1 | 1 | 0 | 1 |" in md and "| MTTR | 1h 0m |" in md
    assert "| orders\\|<b> | 10 | 500 | 2.00% |" in md
    html = digest.to_html(d, "Shop <launch>")
    assert "<h1>Shop &lt;launch&gt;</h1>" in html and "orders|&lt;b&gt;" in html


def test_digest_config_refuses_an_unknown_zone() -> None:
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Base'"):
        parse_config("comms:\n  digest: {timezone: Mars/Base}\n", "c.yaml")


@pytest.fixture
def config() -> HypercareConfig:
    return parse_config(
        "comms:\n  digest: {title: Launch digest, timezone: Europe/Berlin}\n", "test.yaml"
    )


async def test_digest_preview_through_the_api(
    state: AppState, client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    async with state.sessions() as s, s.begin():
        await triage.create_issue(
            session=s,
            matrix=state.matrix,
            data=IssueCreate(title="Checkout fails", priority="P1"),
            actor="api",
        )
        for source, score in (("ticket", None), ("nps", 10), ("csat", 4)):
            s.add(
                Signal(
                    kind="user",
                    source=source,
                    occurred_at=datetime.now(UTC) - timedelta(minutes=5),
                    summary="x",
                    score=score,
                    request_ids=[],
                    dedup_key=uuid.uuid4().hex,
                    raw={},
                )
            )
    viewer = auth(tokens[Role.viewer])
    r = await client.get("/api/v1/digest", headers=viewer)
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["open_issues"]["by_priority"]["P1"]["open"] == 1
    assert d["tickets"]["count"] == 1 and d["nps"]["score"] == 100.0
    assert d["period"]["timezone"] == "Europe/Berlin"
    r = await client.get("/api/v1/digest?format=markdown&hours=2", headers=viewer)
    assert r.headers["content-type"].startswith("text/markdown")
    assert r.text.startswith("# Launch digest")
    r = await client.get("/api/v1/digest?format=html", headers=viewer)
    assert "<h1>Launch digest</h1>" in r.text
    assert r.headers["content-security-policy"] == "default-src 'none'"
    r = await client.get("/api/v1/digest?hours=0", headers=viewer)
    assert r.status_code in (400, 422)
    assert (await client.get("/api/v1/digest")).status_code == 401


def test_scheduled_times_in_the_zone_and_shift_changes() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    # 09:00 in Berlin on 7 Dec is 08:00 UTC
    after = datetime(2026, 12, 7, 7, 0, tzinfo=UTC)
    assert digest.scheduled_between(after, after + timedelta(minutes=59), ["09:00"], berlin) is None
    due = digest.scheduled_between(after, after + timedelta(hours=1), ["09:00"], berlin)
    assert due == datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    # a week down: one digest (the latest time), not one per missed day
    late = digest.scheduled_between(after - timedelta(days=7), after, ["09:00", "17:00"], berlin)
    assert late == datetime(2026, 12, 6, 16, 0, tzinfo=UTC)
    assert digest.scheduled_between(after, after + timedelta(days=1), [], berlin) is None
    assert digest.shift_changes({"ops": "ann", "db": "bob"}, {"ops": "cid", "db": "bob"}) == ["ops"]
    assert digest.shift_changes({}, {"ops": "ann"}) == []


SEND_CONFIG = """
response:
  channels:
    - {name: team, type: slack, url: "http://127.0.0.1:9/slack"}
    - {name: ops-hook, type: webhook, url: "http://127.0.0.1:9/hook"}
comms:
  digest:
    title: Launch digest
    send_at: ["09:00"]
    channels: [team, ops-hook]
"""


async def test_digest_sent_to_channels_when_a_time_passes(engine: AsyncEngine) -> None:
    state = build_state(parse_config(SEND_CONFIG, "test.yaml"), engine)
    memory = MemoryNotifier()
    response_jobs.runtime(state).notifiers = Notifiers(dict.fromkeys(("slack", "webhook"), memory))
    rt = await response_jobs.start(state)
    start = datetime(2026, 1, 5, 8, 30, tzinfo=UTC)  # in the past: its deliveries are due
    assert await comms_jobs.digest_turn(state, start) is None  # first look: nothing due
    assert await comms_jobs.digest_turn(state, start + timedelta(minutes=20)) is None
    why = await comms_jobs.digest_turn(state, start + timedelta(minutes=31))
    assert why == "scheduled 09:00"
    assert memory.sent == []  # the outbox sends, not the digest loop
    await response_jobs.step(state, rt)
    await response_jobs.settle(state, rt)
    slack, hook = sorted(memory.sent, key=lambda o: o.channel.type)
    assert slack.channel.name == "team" and hook.channel.name == "ops-hook"
    async with httpx.AsyncClient() as client:
        _, raw, _ = HttpNotifier(client).request(slack)
        assert json.loads(raw)["text"].startswith("# Launch digest")
        _, raw, _ = HttpNotifier(client).request(hook)
    body = json.loads(raw)
    assert body["kind"] == "digest" and "open_issues" in body["digest"]
    assert body["subject"] == "Launch digest (scheduled 09:00)"
    # once per time; a restart reads when it was last sent
    assert await comms_jobs.digest_turn(state, start + timedelta(minutes=40)) is None
    state.runtimes.discard(comms_jobs.DigestRuntime)
    assert await comms_jobs.digest_turn(state, start + timedelta(minutes=50)) is None
    await response_jobs.step(state, rt)
    await response_jobs.settle(state, rt)
    assert len(memory.sent) == 2
    async with state.sessions() as s:
        counts = await comms_service.digest_outcomes(session=s)
    assert counts == {"pending": 0, "sent": 2, "failed": 0, "dead": 0}


def test_digest_channels_must_be_sendable() -> None:
    with pytest.raises(ConfigError, match="'nope' is not an email, slack, teams or webhook"):
        parse_config("comms:\n  digest:\n    channels: [nope]\n", "c.yaml")
    with pytest.raises(ConfigError, match="not a time of day"):
        parse_config("comms:\n  digest:\n    send_at: ['9am']\n", "c.yaml")
