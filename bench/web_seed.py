"""Fill a hypercare store with a launch's worth of issues, through the tracker's service.

Used by the console page benchmark and the screenshot script. Issues are spread over the
past `days` with their real SLA states (refresh_sla runs at the end), transitions,
assignments and comments, so every page has realistic data to show.
"""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from pathlib import Path

from hypercare.api.state import AppState
from hypercare.config import HypercareConfig
from hypercare.store.base import utcnow
from hypercare.store.db import create_engine
from hypercare.store.migrate import migrate
from hypercare.triage import service
from hypercare.triage.models import IssueCreate
from hypercare.triage.rules import Status

TITLES = [
    "Card payment times out at checkout",
    "Order confirmation email not sent",
    "Search returns stale prices",
    "Login loop on Safari after password reset",
    "Invoice PDF misses VAT line",
    "Mobile app crashes when opening order history",
    "Delivery slot picker shows no slots",
    "Refund status stuck in pending",
    "Typo on pricing page",
    "CSV export is empty for large date ranges",
    "Push notifications arrive twice",
    "Address autocomplete slow in DE",
    "Loyalty points not credited",
    "Checkout button misaligned on small screens",
    "Webhook retries flood partner endpoint",
]
COMPONENTS = ["payments", "checkout", "search", "auth", "billing", "mobile", "delivery", "web"]
PEOPLE = ["dana", "li", "sam", "noor", "ines", None]
ROUTES = ["POST /api/payments", "GET /api/search", "POST /api/orders", "POST /api/login", None]


async def seed(data_dir: Path, count: int, days: float = 7, rng_seed: int = 7) -> int:
    """Create `count` issues in the SQLite store of `data_dir`; returns the last issue id."""
    rng = random.Random(rng_seed)
    engine = create_engine(f"sqlite+aiosqlite:///{data_dir / 'hypercare.db'}")
    await migrate(engine)
    state = AppState.build(HypercareConfig(), engine)
    now = utcnow()
    last = 0
    try:
        for start in range(0, count, 200):
            async with state.sessions() as session, session.begin():
                for n in range(start, min(count, start + 200)):
                    # most recent issues last, so ids follow time like a real launch
                    age = timedelta(hours=days * 24 * (1 - (n + 1) / count) + rng.random())
                    opened = now - age
                    issue = await service.create_issue(
                        session=session,
                        matrix=state.matrix,
                        data=IssueCreate(
                            title=f"{rng.choice(TITLES)}",
                            description="Reported by several users after the launch.",
                            priority=rng.choices(["P1", "P2", "P3", "P4"], [1, 3, 6, 3])[0],
                            component=rng.choice(COMPONENTS),
                            route=rng.choice(ROUTES),
                            assignee=rng.choice(PEOPLE),
                            labels=rng.sample(["launch", "customer", "regression", "ui"], 1),
                        ),
                        actor=rng.choice(["support-desk", "monitoring", "dana"]),
                        now=opened,
                    )
                    path = _path(rng, age)
                    at = opened
                    for to in path:
                        at = at + timedelta(minutes=rng.randint(3, 90))
                        if at >= now:
                            break
                        reason = "duplicate" if to in (Status.closed, Status.reopened) else None
                        await service.transition(
                            session=session,
                            matrix=state.matrix,
                            issue_id=issue.id,
                            to=to,
                            reason=reason,
                            actor="li",
                            now=at,
                        )
                    if rng.random() < 0.3:
                        service.record(
                            session,
                            issue,
                            actor="sam",
                            kind="comment",
                            text="Seen again by a customer this morning.",
                            at=min(now, at + timedelta(minutes=5)),
                        )
                    last = issue.id
        async with state.sessions() as session, session.begin():
            await service.refresh_sla(session=session, matrix=state.matrix, now=now)
    finally:
        await engine.dispose()
    return last


def _path(rng: random.Random, age: timedelta) -> list[Status]:
    S = Status
    if age < timedelta(hours=3):
        return rng.choice([[], [], [S.triaged], [S.investigating]])
    return rng.choice(
        [
            [S.triaged, S.investigating, S.mitigated, S.resolved, S.verified],
            [S.triaged, S.investigating, S.resolved],
            [S.investigating, S.resolved, S.verified, S.closed],
            [S.triaged],
            [S.investigating],
            [],
        ]
    )


if __name__ == "__main__":
    import sys

    print(asyncio.run(seed(Path(sys.argv[1]), int(sys.argv[2]))))
