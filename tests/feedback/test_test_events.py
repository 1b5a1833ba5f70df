"""Test deliveries (`X-Hypercare-Test: true`): stored as test signals through the real
adapter, never opening, joining or feeding an issue. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import httpx

from hypercare.api.state import AppState
from hypercare.auth.rules import Role
from hypercare.detection import service as detection
from hypercare.feedback import service
from hypercare.feedback.drafts import SignalDraft
from hypercare.store.base import utcnow
from tests.conftest import auth
from tests.feedback.helpers import AM_TOKEN, fixture_bytes

AM_URL = "/api/v1/integrations/am/webhook"
TEST = {"content-type": "application/json", "x-hypercare-test": "true"}


async def test_a_test_delivery_is_a_test_signal_without_issue(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    viewer = auth(tokens[Role.viewer])
    firing = fixture_bytes("alertmanager_v4_firing_single.json")
    r = await client.post(AM_URL, content=firing, headers=auth(AM_TOKEN) | TEST)
    assert r.status_code == 202, r.text
    accepted = r.json()
    assert accepted["issues"] == [] and len(accepted["signals"]) == 1
    signal = (await client.get(f"/api/v1/signals/{accepted['signals'][0]}", headers=viewer)).json()
    assert signal["labels"]["test"] == "true" and signal["issue_id"] is None
    assert (await client.get("/api/v1/issues", headers=viewer)).json()["total"] == 0

    # the same alert for real opens an issue; a later test of it does not join that issue
    r = await client.post(AM_URL, content=firing, headers=auth(AM_TOKEN))
    (issue,) = r.json()["issues"]
    r = await client.post(AM_URL, content=firing, headers=auth(AM_TOKEN) | TEST)
    assert r.json()["issues"] == []
    detail = (await client.get(f"/api/v1/issues/{issue}", headers=viewer)).json()
    assert len(detail["signals"]) == 1 and detail["signal_groups"][0]["count"] == 1
    assert (await client.get("/api/v1/issues", headers=viewer)).json()["total"] == 1

    # nor can a person split a test signal off into an issue of its own
    (test_signal,) = r.json()["signals"]
    split = await client.post(
        f"/api/v1/signals/{test_signal}/split", json={}, headers=auth(tokens[Role.responder])
    )
    assert split.status_code == 409 and "test event" in split.json()["error"]["message"]
    assert (await client.get("/api/v1/issues", headers=viewer)).json()["total"] == 1


async def test_signal_queries_leave_test_signals_out(state: AppState) -> None:
    now = utcnow()

    def draft(n: int, **kw: object) -> SignalDraft:
        fields: dict[str, object] = {
            "kind": "user",
            "source": "ticket",
            "summary": f"report {n}",
            "dedup_key": f"ticket:{n}",
            "raw": {},
            "route": "checkout",
            "create_issue": False,
        }
        return SignalDraft(**(fields | kw))  # type: ignore[arg-type]

    async with state.sessions() as session, session.begin():
        for test in (False, True):
            await service.ingest(
                session=session,
                matrix=state.matrix,
                priorities=state.config.feedback.priorities,
                drafts=[draft(1 + test), draft(3 + test, source="nps", score=9)],
                attach=state.attach,
                test=test,
                now=now,
            )
    async with state.sessions() as session:
        since = now - timedelta(minutes=1)
        reports = await detection.user_reports_since(
            session=session, routes=["checkout"], since=since
        )
        scores = await service.survey_scores(
            session=session, start=since, end=now + timedelta(minutes=1)
        )
        every, total = await service.list_signals(
            session=session, filters=service.SignalFilter(), limit=10, offset=0
        )
    assert reports == 2  # the real report and the real survey answer, not the test ones
    assert len(scores) == 1
    assert total == 4 and sum(s.labels.get("test") == "true" for s in every) == 2
