"""The issue detail is the issue's read model plus what each contributed section adds."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.triage.detail import IssueDetailParts, assemble
from hypercare.triage.models import IssueRead
from hypercare.triage.rules import SlaState, Status

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class WithNotes(IssueRead):
    notes: list[str]
    count: int = 0


def _read() -> IssueRead:
    fields: dict[str, Any] = dict.fromkeys(IssueRead.model_fields)
    fields |= {
        "id": 7,
        "title": "t",
        "description": "",
        "priority": "P2",
        "status": Status.new,
        "labels": [],
        "reporter": "api",
        "created_at": NOW,
        "updated_at": NOW,
        "sla_state": SlaState.ok,
        "escalation_level": 0,
        "escalation_path": [],
        "reopen_count": 0,
        "allowed_transitions": [],
    }
    return IssueRead.model_validate(fields)


async def test_sections_add_their_fields_in_order() -> None:
    seen: list[int] = []

    async def notes(_: AsyncSession, read: IssueRead) -> Mapping[str, object]:
        seen.append(read.id)
        return {"notes": ["first"], "count": 1}

    async def count(_: AsyncSession, read: IssueRead) -> Mapping[str, object]:
        return {"count": 2}

    session = cast(AsyncSession, object())
    parts = IssueDetailParts(model=WithNotes, sections=(notes, count))
    detail = await assemble(session=session, read=_read(), parts=parts)
    assert isinstance(detail, WithNotes)
    assert (detail.notes, detail.count, detail.title, seen) == (["first"], 2, "t", [7])
    plain = await assemble(session=session, read=_read(), parts=IssueDetailParts())
    assert type(plain) is IssueRead and plain == _read()


async def test_a_missing_section_fails_the_model() -> None:
    parts = IssueDetailParts(model=WithNotes)
    with pytest.raises(ValueError, match="notes"):
        await assemble(session=cast(AsyncSession, object()), read=_read(), parts=parts)
