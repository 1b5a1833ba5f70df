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
import sys
from array import array
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable
from itertools import accumulate, compress, repeat

# Counter's element counting, which runs in C; here applied to plain dicts
_count_elements = Counter.update.__globals__["_count_elements"]

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


def decode_run(text: str) -> tuple[int, array[int] | list[int]]:
    """(lowest bucket, counts from it) of a `dumps()` string; sum a slice for the calls up
    to a bucket without building a histogram."""
    return _decode_run(text)


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

    def add_indices(self, indices: Iterable[int]) -> None:
        """Count one value in each of these buckets (C-level counting, no Python loop)."""
        _count_elements(self.counts, indices)

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

    def count_upto(self, index: int) -> int:
        """Calls in buckets up to and including `index` (e.g. those under an SLO's latency
        threshold: `bucket_of` it, one lower while the bucket's value is above it)."""
        return sum(n for i, n in self.counts.items() if i <= index)

    def quantile(self, q: float) -> float | None:
        """The q-quantile (0 ≤ q ≤ 1) within ALPHA relative error; None when empty."""
        return self.quantiles((q,))[0]

    def quantiles(self, qs: Iterable[float]) -> list[float | None]:
        """Several quantiles from one cumulative sum over the sorted buckets."""
        counts = self.counts
        keys = sorted(counts)
        return _quantiles(keys, list(accumulate(map(counts.__getitem__, keys))), qs)

    def dumps(self) -> str:
        """The stored form (see the module docstring); "" when empty."""
        if not self.counts:
            return ""
        lo, hi = min(self.counts), max(self.counts)
        return _encode_run(lo, list(map(self.counts.get, range(lo, hi + 1), repeat(0))))

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


def _quantiles(
    keys: list[int] | range, cumulative: list[int], qs: Iterable[float]
) -> list[float | None]:
    """Quantiles of buckets `keys` (ascending) whose running count totals are `cumulative`:
    the bucket of rank ``floor(q * (n - 1))`` is the first whose running total exceeds it."""
    wanted = list(qs)
    total = cumulative[-1] if cumulative else 0
    if total == 0:
        return [None] * len(wanted)
    return [
        bucket_value(
            keys[bisect_right(cumulative, math.floor(min(max(q, 0.0), 1.0) * (total - 1)))]
        )
        for q in wanted
    ]


# Dense packs counts into one Python integer, one 64-bit field per bucket: adding two
# histograms is then one big-integer addition (C speed, no per-bucket Python work). A field
# never carries into the next: that would take 2**64 calls in one bucket.
_FIELD = 64


def _pack(run: array[int] | list[int]) -> int:
    if isinstance(run, array) and run.itemsize == 4 and sys.byteorder == "little":
        # widen uint32 to uint64 fields with four strided byte copies (no per-count objects)
        data = run.tobytes()
        wide = bytearray(len(data) * 2)
        for k in range(4):
            wide[k::8] = data[k::4]
        return int.from_bytes(wide, "little")
    return int.from_bytes(array("Q", run).tobytes(), sys.byteorder)


class Dense:
    """Bucket counts for merging many stored histograms quickly (see `_pack`)."""

    __slots__ = ("acc", "hi", "lo")

    def __init__(self) -> None:
        self.lo = 0  # the bucket of the acc's lowest field
        self.hi = 0  # one past the highest bucket with a count
        self.acc = 0

    def add_packed(self, lo: int, length: int, packed: int) -> None:
        """Add a run of `length` counts from bucket `lo`, as packed by `_pack`."""
        if not packed:
            return
        if not self.acc:
            self.lo, self.hi, self.acc = lo, lo + length, packed
            return
        if lo < self.lo:
            self.acc <<= (self.lo - lo) * _FIELD
            self.lo = lo
        self.acc += packed << ((lo - self.lo) * _FIELD)
        self.hi = max(self.hi, lo + length)

    def add_counts(self, counts: dict[int, int]) -> None:
        for i, n in counts.items():
            self.add_packed(i, 1, n)

    def merge_dumped(self, text: str | None) -> None:
        if text:
            lo, run = _decode_run(text)
            self.add_packed(lo, len(run), _pack(run))

    def run(self) -> array[int]:
        """The counts of buckets lo..hi-1."""
        out = array("Q")
        if self.acc:
            out.frombytes(self.acc.to_bytes((self.hi - self.lo) * 8, sys.byteorder))
        return out

    def quantiles(self, qs: Iterable[float]) -> list[float | None]:
        return _quantiles(range(self.lo, self.hi), list(accumulate(self.run())), qs)

    def counts(self) -> dict[int, int]:
        run = self.run()
        return dict(compress(zip(range(self.lo, self.hi), run, strict=True), run))

    def to_histogram(self) -> Histogram:
        return Histogram(self.counts())

    def view(self) -> Histogram:
        """A Histogram of these counts that answers quantiles without building its dict."""
        return _DenseHistogram(self)


class _DenseHistogram(Histogram):
    """Quantiles straight from a `Dense`; the first use of `counts` (e.g. a merge) builds
    the dict, and from then on it is a plain Histogram."""

    __slots__ = ("_dense",)

    def __init__(self, dense: Dense) -> None:  # `counts` stays unset until asked for
        self._dense: Dense | None = dense

    def __getattr__(self, name: str) -> dict[int, int]:
        dense = self._dense
        if name != "counts" or dense is None:
            raise AttributeError(name)
        self._dense = None
        self.counts = dense.counts()
        return self.counts

    @property
    def count(self) -> int:
        dense = self._dense
        return sum(self.counts.values()) if dense is None else sum(dense.run())

    def count_upto(self, index: int) -> int:
        dense = self._dense
        if dense is None:
            return super().count_upto(index)
        if index < dense.lo:
            return 0
        return sum(dense.run()[: index - dense.lo + 1])

    def quantiles(self, qs: Iterable[float]) -> list[float | None]:
        dense = self._dense
        return super().quantiles(qs) if dense is None else dense.quantiles(qs)


def unpack_dumped(text: str) -> tuple[int, int, int]:
    """(lo, length, packed) of a stored histogram, for `Dense.add_packed`."""
    lo, run = _decode_run(text)
    return lo, len(run), _pack(run)
