"""NPS and CSAT arithmetic: pure functions over (time, score) pairs.

NPS = % promoters (9-10) - % detractors (0-6), from -100 to 100.
CSAT = % of responses that are 4 or 5 on a 1-5 scale.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class NpsTally:
    promoters: int = 0
    passives: int = 0
    detractors: int = 0

    @property
    def responses(self) -> int:
        return self.promoters + self.passives + self.detractors

    @property
    def score(self) -> float | None:
        if not self.responses:
            return None
        return round(100 * (self.promoters - self.detractors) / self.responses, 2)


@dataclass(frozen=True, slots=True)
class CsatTally:
    satisfied: int = 0
    responses: int = 0

    @property
    def score(self) -> float | None:
        return round(100 * self.satisfied / self.responses, 2) if self.responses else None


def nps(scores: Iterable[int]) -> NpsTally:
    p = pa = d = 0
    for s in scores:
        if s >= 9:
            p += 1
        elif s >= 7:
            pa += 1
        else:
            d += 1
    return NpsTally(p, pa, d)


def csat(scores: Iterable[int]) -> CsatTally:
    values = list(scores)
    return CsatTally(sum(1 for s in values if s >= 4), len(values))


def bucket_starts(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    out = []
    at = start
    while at < end:
        out.append(at)
        at += step
    return out


def bucket_index(at: datetime, start: datetime, step: timedelta) -> int:
    return int((at - start) / step)
