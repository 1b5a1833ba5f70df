"""What the running console holds: config, store and derived rules; passed in, never global.

Domains keep their long-lived helpers (collector, detection and response runtimes, the
widget's rate limiter) in `AppState.runtimes`, one object per class: ``runtimes.get(Kind)``
is typed as ``Kind | None``, so mypy checks every access. The composition root
(`hypercare.api.app.build_state`) chooses the concrete parts (the intake's attach step).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hypercare.config import HypercareConfig
from hypercare.detection.citations import CallLogClock
from hypercare.feedback.attach import AttachStep
from hypercare.store.writer import GroupCommit
from hypercare.triage.rules import Matrix

T = TypeVar("T")


class Runtimes:
    """Long-lived helpers owned by the app, at most one per class, typed by that class."""

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held: dict[type[object], object] = {}

    def get(self, kind: type[T]) -> T | None:
        found = self._held.get(kind)
        return found if isinstance(found, kind) else None

    def setdefault(self, kind: type[T], make: Callable[[], T]) -> T:
        """The held `kind`, made by `make()` and kept on first use."""
        found = self.get(kind)
        if found is None:
            found = make()
            self._held[kind] = found
        return found

    def put(self, value: object) -> None:
        self._held[type(value)] = value

    def discard(self, kind: type[object]) -> None:
        self._held.pop(kind, None)


@dataclass
class AppState:
    config: HypercareConfig
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    matrix: Matrix
    # the intake's attach step: which issue a new signal belongs to (None: dedup only)
    attach: AttachStep | None = None
    # the console's own address, when served by `hypercare up` (links in notifications)
    console_url: str | None = None
    # long-lived helpers of the domains (background jobs, caches), one per class
    runtimes: Runtimes = field(default_factory=Runtimes)
    # the newest call time stored: the intake waits for it before reading cited calls
    call_clock: CallLogClock = field(default_factory=CallLogClock)
    # the integrations' intake writes through this: concurrent deliveries share a commit
    writer: GroupCommit = field(init=False)

    def __post_init__(self) -> None:
        self.writer = GroupCommit(self.sessions)
