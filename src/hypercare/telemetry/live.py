"""The console's in-memory view of calls not yet in the rollup tables.

Every accepted batch is stored as call detail first (durable), then added here. The flush
job moves *closed* minutes to ``telemetry_minutes``; the current, partial minute stays here
and queries merge it in, so it is visible as soon as its batch is acknowledged. If the
console dies, nothing is lost: batches not yet flagged ``aggregated`` are re-aggregated
from their call detail at start (`hypercare.telemetry.collector.recover`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hypercare.gateway.records import CallRecord
from hypercare.telemetry.accesslog.base import Rejects
from hypercare.telemetry.aggregate import Aggregate, Key, aggregate_into
from hypercare.telemetry.histcache import HistogramCache


@dataclass
class IngestStats:
    """Counters for the console's /metrics."""

    records: int = 0
    batches: int = 0
    duplicates: int = 0
    rejected: int = 0
    last_lag_seconds: float = 0.0
    write_seconds_sum: float = 0.0
    write_seconds_count: int = 0
    flush_seconds_sum: float = 0.0
    flush_count: int = 0
    # per shipping node: what it last reported about itself
    node_dropped: dict[str, int] = field(default_factory=dict)
    node_spool_bytes: dict[str, int] = field(default_factory=dict)
    # access-log lines that did not match their format, per source, with a sample: pushed
    # ones counted here, tailed ones as their node last reported them
    unparsed: Rejects = field(default_factory=Rejects)


class LiveStore:
    """Aggregates of acknowledged records not yet written as rollups.

    Not thread-safe: used from the console's event loop only. `lock` serialises the
    flush/compaction writers with readers that merge stored rows and live ones, so a
    minute is never counted twice or missed while it moves to the store.
    """

    def __init__(self, histogram_cache_bytes: int = 64 << 20) -> None:
        self.pending: dict[Key, Aggregate] = {}
        # decoded histograms of stored rollup rows, for the queries (see histcache.py)
        self.histograms = HistogramCache(histogram_cache_bytes)
        # unflushed batch id -> the minute buckets its records fall in
        self.batches: dict[int, set[int]] = {}
        self.lock = asyncio.Lock()
        self.stats = IngestStats()

    def add(
        self,
        batch_id: int,
        records: list[CallRecord],
        columns: Sequence[Sequence[Any]] | None = None,
    ) -> None:
        """Aggregate a stored batch's records (`columns`: theirs, when the caller has them)."""
        self.batches[batch_id] = aggregate_into(self.pending, records, columns=columns)

    def take_closed(self, cutoff: int) -> tuple[dict[Key, Aggregate], list[int], list[int]]:
        """Remove and return aggregates of buckets before `cutoff`, the batches now wholly
        flushed, and the batches partly flushed (they keep newer buckets here)."""
        closed = {k: a for k, a in self.pending.items() if k[2] < cutoff}
        for k in closed:
            del self.pending[k]
        done: list[int] = []
        partial: list[int] = []
        for batch_id, buckets in list(self.batches.items()):
            if not buckets or max(buckets) < cutoff:
                done.append(batch_id)
                del self.batches[batch_id]
            elif min(buckets) < cutoff:
                partial.append(batch_id)
                self.batches[batch_id] = {b for b in buckets if b >= cutoff}
        return closed, done, partial

    def put_back(self, closed: dict[Key, Aggregate], batch_ids: list[int], cutoff: int) -> None:
        """Undo `take_closed` after a failed write; the next flush retries."""
        for k, a in closed.items():
            mine = self.pending.get(k)
            self.pending[k] = a if mine is None else a.merge(mine)
        for batch_id in batch_ids:
            self.batches.setdefault(batch_id, set()).add(cutoff - 60)

    def select(self, dim: str, start: int, end: int, key: str | None = None) -> list[Key]:
        """Keys of live aggregates of `dim` (and `key`) with bucket in [start, end)."""
        return [
            k
            for k in self.pending
            if k[0] == dim and start <= k[2] < end and (key is None or k[1] == key)
        ]
