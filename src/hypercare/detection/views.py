"""HTTP for analysis: deployments, corrections (merge, split, unlink), links and live state."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from hypercare.api.deps import Admin, Db, Responder, State, Viewer
from hypercare.bounds import Id
from hypercare.detection import service
from hypercare.detection.config import RuleConfig
from hypercare.detection.jobs import route_summary, runtime
from hypercare.detection.models import (
    DeploymentCreate,
    DeploymentRead,
    LinkRead,
    MergeRequest,
    SplitRequest,
    WatchRead,
)
from hypercare.detection.rules import Rule
from hypercare.feedback.models import SignalRead
from hypercare.triage import service as triage
from hypercare.triage.models import IssueRead

router = APIRouter(prefix="/api/v1", tags=["analysis"])


@router.post("/deployments", response_model=DeploymentRead, status_code=201)
async def create_deployment(session: Db, who: Responder, body: DeploymentCreate) -> DeploymentRead:
    """Record a deploy or hotfix; linked issues get a timeline entry and a validation watch."""
    row = await service.record_deployment(session=session, data=body, actor=who.name)
    return DeploymentRead.model_validate(row)


@router.get("/deployments", response_model=list[DeploymentRead])
async def list_deployments(
    session: Db, _: Viewer, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[DeploymentRead]:
    rows = await service.list_deployments(session=session, limit=limit)
    return [DeploymentRead.model_validate(r) for r in rows]


@router.post("/issues/{issue_id}/merge", response_model=IssueRead)
async def merge_issue(
    state: State, session: Db, who: Responder, issue_id: Id, body: MergeRequest
) -> IssueRead:
    """Move this issue's signals into `into` and close this one as its duplicate."""
    target = await service.merge(
        session=session, matrix=state.matrix, source_id=issue_id, into_id=body.into, actor=who.name
    )
    return triage.to_read(target, state.matrix)


@router.post("/signals/{signal_id}/split", response_model=IssueRead, status_code=201)
async def split_signal(
    state: State, session: Db, who: Responder, signal_id: Id, body: SplitRequest | None = None
) -> IssueRead:
    """Open a new issue for this signal; automation never links it back to the old one."""
    issue = await service.split(
        session=session,
        matrix=state.matrix,
        signal_id=signal_id,
        title=body.title if body else None,
        actor=who.name,
    )
    return triage.to_read(issue, state.matrix)


@router.post("/signals/{signal_id}/unlink", response_model=SignalRead)
async def unlink_signal(session: Db, who: Responder, signal_id: Id) -> SignalRead:
    signal = await service.unlink(session=session, signal_id=signal_id, actor=who.name)
    return SignalRead.model_validate(signal)


@router.get("/issues/{issue_id}/links", response_model=list[LinkRead])
async def issue_links(session: Db, _: Viewer, issue_id: Id) -> list[LinkRead]:
    """Why each signal is on this issue: score and reasons."""
    await triage.get_issue(session=session, issue_id=issue_id)
    links = await service.links_of(session=session, issue_id=issue_id)
    return [LinkRead.model_validate(link) for link in links.values()]


@router.get("/issues/{issue_id}/validation", response_model=list[WatchRead])
async def issue_validation(session: Db, _: Viewer, issue_id: Id) -> list[WatchRead]:
    await triage.get_issue(session=session, issue_id=issue_id)
    watches = await service.watches_of(session=session, issue_id=issue_id)
    return [WatchRead.model_validate(w) for w in watches]


@router.get("/detection/rules")
async def list_rules(state: State, session: Db, _: Viewer) -> list[dict[str, Any]]:
    """Every rule in force: from the file, added through the API, and the built-in ones."""
    added = {r.name for r in await service.stored_rules(session=session)}
    configured = {r.name for r in state.config.detection.rules}
    return [
        {
            **_rule(r),
            "origin": "api" if r.name in added else "config" if r.name in configured else "default",
        }
        for r in runtime(state).detector.rules
    ]


@router.post("/detection/rules", status_code=201)
async def add_rule(state: State, session: Db, who: Admin, body: RuleConfig) -> dict[str, Any]:
    """Add an alert rule (same fields as `detection.rules` in the file); effective at once."""
    await service.add_rule(
        session=session,
        rule=body,
        configured={r.name for r in state.config.detection.rules},
        actor=who.name,
    )
    extra = await service.stored_rules(session=session)
    runtime(state).detector.rules = state.config.detection.all_rules(extra)
    return _rule(body.to_rule())


@router.delete("/detection/rules/{name}", status_code=204)
async def delete_rule(state: State, session: Db, _: Admin, name: str) -> Response:
    await service.delete_rule(session=session, name=name)
    await session.flush()
    extra = await service.stored_rules(session=session)
    runtime(state).detector.rules = state.config.detection.all_rules(extra)
    return Response(status_code=204)


def _rule(r: Rule) -> dict[str, Any]:
    return {
        "name": r.name,
        "metric": r.metric.value,
        "condition": r.condition.value,
        "threshold": r.threshold,
        "for_seconds": r.for_seconds,
        "clear_for_seconds": r.clear_for_seconds,
        "min_requests": r.min_requests,
        "min_events": r.min_events,
        "severity": r.severity,
        "category": r.category,
        "routes": list(r.routes) or ["*"],
        "description": r.description,
    }


@router.get("/detection/live")
async def detection_live(state: State, _: Viewer) -> dict[str, Any]:
    """Every route's last minute as detection sees it, and the rules firing now."""
    rt = runtime(state)
    return {
        "routes": [route_summary(rt, r) for r in sorted(rt.live.routes)],
        "firing": [{"rule": rule, "route": route} for rule, route in rt.detector.firing()],
        "rules": [_rule(r) for r in rt.detector.rules],
        "last_tick_ms": round(rt.last_tick_ms, 2),
        "findings": rt.findings,
    }
