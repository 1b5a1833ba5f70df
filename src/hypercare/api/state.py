"""What the running console holds: config, store and derived rules; passed in, never global."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hypercare.config import HypercareConfig
from hypercare.detection.attach import Correlator
from hypercare.feedback.attach import AttachStep
from hypercare.store.db import session_factory
from hypercare.store.writer import GroupCommit
from hypercare.triage.rules import Matrix


@dataclass
class AppState:
    config: HypercareConfig
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    matrix: Matrix
    # the intake's attach step: which issue a new signal belongs to (None: dedup only)
    attach: AttachStep | None = None
    # long-lived helpers owned by the app (background jobs, caches), keyed by name
    extras: dict[str, Any] = field(default_factory=dict)
    # the integrations' intake writes through this: concurrent deliveries share a commit
    writer: GroupCommit = field(init=False)

    def __post_init__(self) -> None:
        self.writer = GroupCommit(self.sessions)

    @classmethod
    def build(cls, config: HypercareConfig, engine: AsyncEngine) -> AppState:
        return cls(
            config=config,
            engine=engine,
            sessions=session_factory(engine),
            matrix=Matrix(config.triage),
            attach=Correlator(config),
        )
