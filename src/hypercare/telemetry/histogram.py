"""A mergeable latency histogram with a relative error bound (DDSketch-style log buckets).

A value ``x`` (milliseconds) falls in bucket ``i = ceil(log(x) / log(GAMMA))`` with
``GAMMA = (1 + ALPHA) / (1 - ALPHA)``; bucket ``i`` covers ``(GAMMA**(i-1), GAMMA**i]`` and is
reported as ``2 * GAMMA**i / (GAMMA + 1)``, which is within ``ALPHA`` (1 %) of every value in
it. Histograms are sparse ``{bucket: count}`` maps, so merging (across minutes, nodes,
consumers) is adding counts, and a quantile of a merge is as exact as one of the raw data.

Error bound: for values from ``MIN_MS`` (1 µs) to ``MAX_MS`` (1 hour), ``quantile(q)`` is
within ±1 % (relative) of the exact order statistic ``sorted(values)[floor(q * (n - 1))]``.
Values below ``MIN_MS`` (including 0) are counted in the lowest bucket, values above
``MAX_MS`` in the highest.

Stored form (`dumps`): the dense run of counts from the lowest to the highest non-empty
bucket, as ``I<lowest bucket>:<base64 of little-endian uint32 counts>`` (or, if a count
ever passes 2**32, a JSON array ``[lowest bucket, count, ...]``). Readers add such runs into
one dense run (`Dense`), which merges thousands of rows with C-speed slice operations.
"""

from __future__ import annotations

import base64
import json
import math
import operator
import sys
from array import array
from collections.abc import Iterable

ALPHA = 0.01
GAMMA = (1 + ALPHA) / (1 - ALPHA)
_LN_GAMMA = math.log(GAMMA)
MIN_MS = 0.001
MAX_MS = 3_600_000.0
_MIN_INDEX = math.ceil(math.log(MIN_MS) / _LN_GAMMA)
_MAX_INDEX = math.ceil(math.log(MAX_MS) / _LN_GAMMA)


def bucket_of(ms: float) -> int:
    """The bucket index of a latency in milliseconds."""
    if ms <= MIN_MS:
        return _MIN_INDEX
    if ms >= MAX_MS:
        return _MAX_INDEX
    return math.ceil(math.log(ms) / _LN_GAMMA)


def _encode_run(lo: int, run: list[int]) -> str:
    if max(run) >= 2**32:
        return json.dumps([lo, *run], separators=(",", ":"))
    packed = array("I", run)
    if sys.byteorder == "big":  # pragma: no cover - stored form is little-endian
        packed.byteswap()
    return f"I{lo}:{base64.b64encode(packed.tobytes()).decode()}"


def _decode_run(text: str) -> tuple[int, array[int] | list[int]]:
    if text[0] == "I":
        lo, _, data = text[1:].partition(":")
        packed = array("I")
        packed.frombytes(base64.b64decode(data))
        if sys.byteorder == "big":  # pragma: no cover
            packed.byteswap()
        return int(lo), packed
    run = json.loads(text)
    return int(run[0]), run[1:]


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
        """The stored form (see the module docstring); "" when empty."""
        if not self.counts:
            return ""
        lo, hi = min(self.counts), max(self.counts)
        get = self.counts.get
        return _encode_run(lo, [get(i, 0) for i in range(lo, hi + 1)])

    @classmethod
    def loads(cls, text: str | None) -> Histogram:
        return cls().merge_dumped(text)

    def merge_dumped(self, text: str | None) -> Histogram:
        """Merge a `dumps()` string into this histogram."""
        if text:
            lo, run = _decode_run(text)
            counts = self.counts
            for i, n in enumerate(run, start=lo):
                if n:
                    counts[i] = counts.get(i, 0) + n
        return self


class Dense:
    """A dense run of bucket counts, for merging many stored histograms quickly: runs are
    added with C-speed slice operations instead of one dict update per bucket."""

    __slots__ = ("lo", "run")

    def __init__(self) -> None:
        self.lo = 0
        self.run: list[int] | None = None

    def merge_dumped(self, text: str | None) -> None:
        if not text:
            return
        lo, other = _decode_run(text)
        run = self.run
        if run is None:
            self.lo, self.run = lo, list(other)
            return
        if lo < self.lo:
            run[0:0] = [0] * (self.lo - lo)
            self.lo = lo
        start = lo - self.lo
        end = start + len(other)
        if end > len(run):
            run.extend([0] * (end - len(run)))
        run[start:end] = map(operator.add, run[start:end], other)

    def to_histogram(self) -> Histogram:
        if self.run is None:
            return Histogram()
        return Histogram({i: n for i, n in enumerate(self.run, start=self.lo) if n})
