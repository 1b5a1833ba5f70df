"""Process-wide settings of the console process, applied once it has started."""

from __future__ import annotations

import gc

# The cyclic GC's youngest generation is collected every this many net container
# allocations (Python's default: 700). Telemetry ingest allocates a few container objects
# per call record (its decoded array, its record, its block row) that all live for one
# batch: with the default, a batch of 5,000 records triggered dozens of collections that
# walked the batch again and again, a third of the collector's CPU time. Memory held by
# cyclic garbage between collections stays small (tens of thousands of objects).
YOUNG_THRESHOLD = 50_000


def settle_gc() -> None:
    """Keep everything loaded so far out of the cyclic GC's reach (it lives as long as
    the process: full collections stop walking it, they cost up to a few hundred ms in
    the middle of a query otherwise), and collect the youngest generation less often."""
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)


__all__ = ["YOUNG_THRESHOLD", "settle_gc"]
