"""A mergeable latency histogram with a relative error bound (DDSketch-style log buckets).

A value ``x`` (milliseconds) falls in bucket ``i = ceil(log(x) / log(GAMMA))`` with
``GAMMA = (1 + ALPHA) / (1 - ALPHA)``; bucket ``i`` covers ``(GAMMA**(i-1), GAMMA**i]`` and is
reported as ``2 * GAMMA**i / (GAMMA + 1)``, which is within ``ALPHA`` (1 %) of every value in
it. Histograms are sparse ``{bucket: count}`` maps, so merging (across minutes, nodes,
consumers) is adding counts, and a quantile of a merge is as exact as one of the raw data.

Error bound: for values from ``MIN_MS`` (1 µs) up, ``quantile(q)`` is within ±1 % (relative)
of the exact order statistic ``sorted(values)[floor(q * (n - 1))]``. Values below ``MIN_MS``
(including 0) are counted in the ``MIN_MS`` bucket.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable

ALPHA = 0.01
GAMMA = (1 + ALPHA) / (1 - ALPHA)
_LN_GAMMA = math.log(GAMMA)
MIN_MS = 0.001
_MIN_INDEX = math.ceil(math.log(MIN_MS) / _LN_GAMMA)


def bucket_of(ms: float) -> int:
    """The bucket index of a latency in milliseconds."""
    if ms <= MIN_MS:
        return _MIN_INDEX
    return math.ceil(math.log(ms) / _LN_GAMMA)


def bucket_value(index: int) -> float:
    """The representative value of a bucket: within ALPHA of anything in it."""
    return 2 * GAMMA**index / (GAMMA + 1)


class Histogram:
    """Sparse bucket counts. Not thread-safe; cheap to copy and merge."""

    __slots__ = ("counts",)

    def __init__(self, counts: dict[int, int] | None = None) -> None:
        self.counts: dict[int, int] = counts if counts is not None else {}

    @classmethod
    def of(cls, values: Iterable[float]) -> Histogram:
        h = cls()
        for v in values:
            h.add(v)
        return h

    def add(self, ms: float) -> None:
        i = bucket_of(ms)
        self.counts[i] = self.counts.get(i, 0) + 1

    def add_bucket(self, index: int, n: int = 1) -> None:
        self.counts[index] = self.counts.get(index, 0) + n

    def merge(self, other: Histogram) -> Histogram:
        """Add `other`'s counts into this one (in place) and return self."""
        counts = self.counts
        for i, n in other.counts.items():
            counts[i] = counts.get(i, 0) + n
        return self

    @property
    def count(self) -> int:
        return sum(self.counts.values())

    def quantile(self, q: float) -> float | None:
        """The q-quantile (0 ≤ q ≤ 1) within ALPHA relative error; None when empty."""
        total = self.count
        if total == 0:
            return None
        rank = math.floor(min(max(q, 0.0), 1.0) * (total - 1))
        seen = 0
        for i in sorted(self.counts):
            seen += self.counts[i]
            if seen > rank:
                return bucket_value(i)
        return bucket_value(max(self.counts))  # pragma: no cover - unreachable

    def quantiles(self, qs: Iterable[float]) -> list[float | None]:
        """Several quantiles in one pass over the sorted buckets."""
        wanted = list(qs)
        total = self.count
        if total == 0:
            return [None] * len(wanted)
        ranks = [math.floor(min(max(q, 0.0), 1.0) * (total - 1)) for q in wanted]
        out: list[float | None] = [None] * len(wanted)
        order = sorted(range(len(wanted)), key=lambda k: ranks[k])
        pos = 0
        seen = 0
        for i in sorted(self.counts):
            seen += self.counts[i]
            while pos < len(order) and seen > ranks[order[pos]]:
                out[order[pos]] = bucket_value(i)
                pos += 1
            if pos == len(order):
                break
        return out

    def dumps(self) -> str:
        """Compact JSON: a flat list ``[bucket, count, bucket, count, ...]``."""
        flat: list[int] = []
        for i, n in self.counts.items():
            flat.append(i)
            flat.append(n)
        return json.dumps(flat, separators=(",", ":"))

    @classmethod
    def loads(cls, text: str | None) -> Histogram:
        if not text:
            return cls()
        flat = json.loads(text)
        return cls(dict(zip(flat[::2], flat[1::2], strict=True)))

    def merge_dumped(self, text: str | None) -> Histogram:
        """Merge a `dumps()` string without building an intermediate Histogram."""
        if text:
            flat = json.loads(text)
            counts = self.counts
            for k in range(0, len(flat), 2):
                i = flat[k]
                counts[i] = counts.get(i, 0) + flat[k + 1]
        return self
