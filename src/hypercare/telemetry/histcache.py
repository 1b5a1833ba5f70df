"""A bounded, in-process cache of stored rollup histograms, decoded and packed.

A rollup row never changes once written (late data adds another row; retention deletes
old rows), so the packed form of its histogram (`histogram.unpack_dumped`) can be kept by
row id. Reading and decoding the histogram text was most of the cost of an analytics
query; with the cache, a query over rows seen before reads only their counters. The
entry remembers the row's bucket: a row id reused after its row expired (SQLite may reuse
the highest rowid) is a miss, never a wrong histogram.
"""

from __future__ import annotations

import sys
from collections import OrderedDict

Packed = tuple[int, int, int]  # (lowest bucket, run length, packed counts), see Dense
CacheKey = tuple[str, int, str]  # (table, row id, histogram name)

# bytes counted per entry on top of the packed integer: the key, tuples, dict slot
_OVERHEAD = 200


class HistogramCache:
    """LRU by bytes. Not thread-safe: the console's event loop only."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[CacheKey, tuple[int, Packed, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey, bucket: int) -> Packed | None:
        found = self._entries.get(key)
        if found is None or found[0] != bucket:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return found[1]

    def put(self, key: CacheKey, bucket: int, packed: Packed) -> None:
        if self.max_bytes <= 0:
            return
        size = sys.getsizeof(packed[2]) + _OVERHEAD
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old[2]
        self._entries[key] = (bucket, packed, size)
        self.bytes += size
        while self.bytes > self.max_bytes and self._entries:
            _, (_, _, freed) = self._entries.popitem(last=False)
            self.bytes -= freed


__all__ = ["CacheKey", "HistogramCache", "Packed"]
