"""The issue detail, assembled from what each installed domain contributes.

Triage owns the issue; other domains know what belongs beside it (feedback: the linked
signals and their dedup groups; detection: why each is linked, the fix's validation, the
flapping keys). Each contributes a *section*: an async function of the session and the
issue's read model returning the fields it adds. The composition root
(`hypercare.api.app`) lists the sections and the response model that declares all their
fields, as `hypercare.web.app.PARTS` does for console pages, so triage imports neither
feedback nor detection (`scripts/check_imports.py` enforces it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.triage.models import IssueRead

IssueSection = Callable[[AsyncSession, IssueRead], Awaitable[Mapping[str, object]]]


@dataclass(frozen=True, slots=True)
class IssueDetailParts:
    # the answer's model: `IssueRead` plus every section's fields
    model: type[IssueRead] = IssueRead
    sections: tuple[IssueSection, ...] = ()


async def assemble(*, session: AsyncSession, read: IssueRead, parts: IssueDetailParts) -> IssueRead:
    """`read` with every section's fields, as `parts.model`; sections run in order."""
    fields: dict[str, object] = dict(read)
    for section in parts.sections:
        fields.update(await section(session, read))
    return parts.model.model_validate(fields)
