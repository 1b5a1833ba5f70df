"""The outbox and the dispatcher against a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from hypercare.api.state import AppState
from hypercare.config import HypercareConfig, parse_config
from hypercare.feedback.models import Signal
from hypercare.response import jobs, service
from hypercare.response.channels import MemoryNotifier, Notifiers, Outbound, Outcome
from hypercare.response.models import Delivery
from hypercare.triage import service as triage
from hypercare.triage.models import IssueCreate
from hypercare.triage.rules import Status

CONFIG = """
response:
  base_url: https://hc.example.com
  channels:
    - name: ops-hook
      type: webhook
      url: http://127.0.0.1:9/hook
    - name: team
      type: slack
      url: http://127.0.0.1:9/slack
  rules:
    - match: {priority: [P1]}
      notify: [ops-hook]
    - match: {component: [payments]}
      notify: [team]
  dispatch:
    backoff: 0s
    max_attempts: 3
"""


@pytest.fixture
def config() -> HypercareConfig:
    return parse_config(CONFIG, "test.yaml")


async def _runtime(state: AppState, memory: MemoryNotifier) -> jobs.ResponseRuntime:
    state.runtimes.discard(jobs.ResponseRuntime)
    rt = jobs.runtime(state)
    rt.notifiers = Notifiers(dict.fromkeys(("webhook", "slack"), memory))
    return await jobs.start(state)


async def _open(state: AppState, title: str, priority: str = "P1", **extra: object) -> int:
    async with state.sessions() as s, s.begin():
        issue = await triage.create_issue(
            session=s,
            matrix=state.matrix,
            data=IssueCreate(title=title, priority=priority, **extra),  # type: ignore[arg-type]
            actor="api",
        )
    return issue.id


async def _turn(state: AppState, rt: jobs.ResponseRuntime) -> None:
    await jobs.step(state, rt)
    await jobs.settle(state, rt)


async def _deliveries(state: AppState) -> list[Delivery]:
    async with state.sessions() as s:
        return list(await s.scalars(select(Delivery).order_by(Delivery.id)))


async def test_a_p1_notifies_its_channels_once(state: AppState) -> None:
    memory = MemoryNotifier()
    rt = await _runtime(state, memory)
    issue_id = await _open(state, "Payments down", component="payments")
    await _open(state, "Typo on the footer", priority="P4")
    await _turn(state, rt)
    assert sorted(o.channel.name for o in memory.sent) == ["ops-hook", "team"]
    message = memory.sent[0].message
    assert message["issue_id"] == issue_id and message["priority"] == "P1"
    assert message["title"] == "Payments down"
    assert message["issue_url"] == f"https://hc.example.com/issues/{issue_id}"
    assert message["ack_url"].startswith("https://hc.example.com/ack/")
    hook = next(o for o in memory.sent if o.channel.name == "ops-hook")
    assert hook.secret and hook.secret.startswith("whsec_")  # generated: config gave none
    rows = await _deliveries(state)
    assert [(d.channel, d.state, d.attempts) for d in rows] == [
        ("ops-hook", "sent", 1),
        ("team", "sent", 1),
    ]
    # another turn sends nothing again
    await _turn(state, rt)
    assert len(memory.sent) == 2
    async with state.sessions() as s:
        entries = await triage.timeline(session=s, issue_id=issue_id)
    notes = [e for e in entries if e.kind == "notification"]
    assert sorted(e.data["channel"] for e in notes) == ["ops-hook", "team"]
    assert all(e.data["state"] == "sent" for e in notes)


async def test_changes_notify_but_comments_do_not(state: AppState) -> None:
    memory = MemoryNotifier()
    rt = await _runtime(state, memory)
    issue_id = await _open(state, "Checkout slow")
    await _turn(state, rt)
    async with state.sessions() as s, s.begin():
        await triage.add_comment(session=s, issue_id=issue_id, text="looking", actor="ann")
        await triage.transition(
            session=s,
            matrix=state.matrix,
            issue_id=issue_id,
            to=Status.investigating,
            reason=None,
            actor="ann",
        )
    await _turn(state, rt)
    assert [o.message["event"] for o in memory.sent] == ["created", "status"]
    assert memory.sent[1].message["status"] == "investigating"


async def test_nothing_is_sent_for_a_rolled_back_transaction(state: AppState) -> None:
    memory = MemoryNotifier()
    rt = await _runtime(state, memory)
    async with state.sessions() as s, s.begin():
        await triage.create_issue(
            session=s,
            matrix=state.matrix,
            data=IssueCreate(title="never committed", priority="P1"),
            actor="api",
        )
        await s.flush()
        await s.rollback()
    await _open(state, "committed")
    for _ in range(2):
        await _turn(state, rt)
    assert [o.message["title"] for o in memory.sent] == ["committed"]


async def test_failures_retry_then_go_dead_and_replay_revives(state: AppState) -> None:
    memory = MemoryNotifier(fail=lambda _o: Outcome(False, 503, "HTTP 503"))
    rt = await _runtime(state, memory)
    await _open(state, "Flaky receiver")
    await _turn(state, rt)
    (d,) = await _deliveries(state)
    assert (d.state, d.attempts, d.receiver_status, d.error) == ("failed", 1, 503, "HTTP 503")
    assert d.next_attempt_at is not None
    for _ in range(4):
        await _turn(state, rt)
    (d,) = await _deliveries(state)
    assert (d.state, d.attempts) == ("dead", 3)
    assert len(memory.sent) == 3
    async with state.sessions() as s:
        entries = await triage.timeline(session=s, issue_id=d.issue_id)
    assert any(e.kind == "notification" and e.data["state"] == "dead" for e in entries)

    old_key = d.idempotency_key
    async with state.sessions() as s, s.begin():
        await service.replay(session=s, delivery_id=d.id, actor="ann", now=d.created_at)
    memory.fail = lambda _o: None
    await _turn(state, rt)
    (d,) = await _deliveries(state)
    assert (d.state, d.attempts) == ("sent", 1)
    assert memory.sent[-1].idempotency_key != old_key


async def test_a_client_error_is_not_retried(state: AppState) -> None:
    memory = MemoryNotifier(fail=lambda _o: Outcome(False, 404, "HTTP 404"))
    rt = await _runtime(state, memory)
    await _open(state, "Wrong URL")
    await _turn(state, rt)
    (d,) = await _deliveries(state)
    assert (d.state, d.attempts, d.receiver_status) == ("dead", 1, 404)


async def test_a_crash_loses_nothing_and_never_resends_what_was_acknowledged(
    state: AppState,
) -> None:
    first = MemoryNotifier()
    rt = await _runtime(state, first)
    await _open(state, "Sent before the crash")
    await _turn(state, rt)
    # the second one is sent, the receiver says 200, and the process dies before storing it
    await _open(state, "In flight at the crash")
    await jobs.step(state, rt)
    for task in list(rt.inflight.values()):
        await task
    rt.results.clear()
    assert [o.message["title"] for o in first.sent] == [
        "Sent before the crash",
        "In flight at the crash",
    ]
    in_flight_key = first.sent[1].idempotency_key
    # made while the console was down
    await _open(state, "Opened while down")

    second = MemoryNotifier()
    rt2 = await _runtime(state, second)
    await _turn(state, rt2)
    titles = [o.message["title"] for o in second.sent]
    assert sorted(titles) == ["In flight at the crash", "Opened while down"]
    # resent with the same key: the receiver can tell it already has it
    resent = next(o for o in second.sent if o.message["title"] == "In flight at the crash")
    assert resent.idempotency_key == in_flight_key
    assert all(d.state == "sent" for d in await _deliveries(state))


async def test_a_slow_receiver_does_not_hold_up_the_outbox(state: AppState) -> None:
    release, both = asyncio.Event(), asyncio.Event()

    class Slow:
        def __init__(self) -> None:
            self.started: list[Outbound] = []

        async def send(self, outbound: Outbound) -> Outcome:
            self.started.append(outbound)
            if len(self.started) == 2:
                both.set()
            await release.wait()
            return Outcome(True, 200)

    slow = Slow()
    state.runtimes.discard(jobs.ResponseRuntime)
    rt = jobs.runtime(state)
    rt.notifiers = Notifiers({"webhook": slow, "slack": slow})
    await jobs.start(state)
    await _open(state, "first")
    await jobs.step(state, rt)
    await _open(state, "second")
    await jobs.step(state, rt)  # returns although the first send still hangs
    await asyncio.wait_for(both.wait(), timeout=10)
    assert [o.message["title"] for o in slow.started] == ["first", "second"]
    release.set()
    await jobs.settle(state, rt)
    assert [d.state for d in await _deliveries(state)] == ["sent", "sent"]


# only PostgreSQL commits concurrent writers out of id order (SQLite has one writer)
@pytest.mark.postgres
@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
async def test_an_entry_committed_after_a_later_one_is_not_skipped(
    state: AppState, engine: AsyncEngine
) -> None:
    assert engine.dialect.name == "postgresql"
    memory = MemoryNotifier()
    rt = await _runtime(state, memory)
    async with state.sessions() as slow:
        await slow.begin()
        await triage.create_issue(
            session=slow,
            matrix=state.matrix,
            data=IssueCreate(title="slow transaction", priority="P1"),
            actor="api",
        )
        await slow.flush()
        await _open(state, "fast transaction")  # a higher id, committed first
        await _turn(state, rt)
        assert [o.message["title"] for o in memory.sent] == ["fast transaction"]
        await slow.commit()
    await _turn(state, rt)
    assert [o.message["title"] for o in memory.sent] == ["fast transaction", "slow transaction"]
    # the cursor has moved over the hole the slow transaction left while it was open
    async with state.sessions() as s:
        cursor = await service.get_setting(session=s, name=service.CURSOR)
    assert int(cursor or 0) >= max(d.entry_id for d in await _deliveries(state))
    assert not rt.gaps


async def test_messages_carry_the_evidence_of_linked_signals(state: AppState) -> None:
    memory = MemoryNotifier()
    rt = await _runtime(state, memory)
    async with state.sessions() as s, s.begin():
        issue = await triage.create_issue(
            session=s,
            matrix=state.matrix,
            data=IssueCreate(title="Payments 503", priority="P1"),
            actor="hypercare",
        )
        s.add(
            Signal(
                kind="system",
                source="gateway",
                occurred_at=issue.created_at,
                summary="payment-status: error rate 34 % (baseline 0.2 %), p95 1.2 s",
                dedup_key="gw:payment-status",
                issue_id=issue.id,
                raw={},
            )
        )
    await _turn(state, rt)
    evidence = memory.sent[0].message["evidence"]
    assert evidence["Signals"] == "1"
    assert "error rate 34 %" in evidence["Latest signal"]


async def test_an_ended_send_whose_outcome_is_not_stored_yet_is_not_sent_again(
    state: AppState,
) -> None:
    memory = MemoryNotifier()
    rt = await _runtime(state, memory)
    await _open(state, "once")
    await jobs.outbox_pass(state, rt)
    await jobs.dispatch_pass(state, rt)
    for task in list(rt.inflight.values()):
        await task
    assert rt.results and not rt.inflight  # ended, outcome held in memory
    await jobs.dispatch_pass(state, rt)
    for task in list(rt.inflight.values()):
        await task
    assert len(memory.sent) == 1
    await jobs.store_results(state, rt)
    assert [d.state for d in await _deliveries(state)] == ["sent"]
