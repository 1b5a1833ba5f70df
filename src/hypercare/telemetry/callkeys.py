"""Lookup keys for call detail by request id and trace id.

Request and trace ids are random, so a plain index on them puts every new call on a random
page of a large B-tree: each stored call dirties its own index page, twice. Calls are
indexed instead (table `telemetry_call_keys`, see segments.py) by an integer key that
starts with the call's second and ends with a 31-bit hash of the id::

    key = int(ts) << 31 | crc32(id) & 0x7FFFFFFF

New calls land in the region of the current second, so the pages an ingest batch dirties
are few and hot. A lookup asks for one key per second of the range searched (an index seek
each, generated inside the database) and then compares the id of each call found, so hash
collisions never return a wrong call. The key fits a signed 64-bit integer for any time
before 2100, the latest time the collector accepts.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from itertools import repeat
from operator import and_, lshift, or_
from zlib import crc32

from sqlalchemy import BigInteger, Select, literal, select

_HASH_BITS = 31
_HASH_MASK = (1 << _HASH_BITS) - 1
SECOND = 1 << _HASH_BITS

# Lookups without a time range search newest first in these windows (seconds back from
# now), stopping at the first window that finds the id: most lookups are of recent calls.
SEARCH_WINDOWS = (300, 3600, 24 * 3600)


def id_hash(ident: str) -> int:
    return crc32(ident.encode("utf-8", "surrogatepass")) & _HASH_MASK


def call_key(ident: str, ts: float) -> int:
    return (int(ts) << _HASH_BITS) | id_hash(ident)


def keys_of(ids: Sequence[str], times: Sequence[float]) -> list[int]:
    """`call_key` of each (id, time) pair, hashing with C-level maps."""
    try:
        hashes = list(map(crc32, map(str.encode, ids)))
    except UnicodeEncodeError:  # a lone surrogate somewhere: the careful way
        return list(map(call_key, ids, times))
    if len(hashes) != len(times):
        raise ValueError("keys_of needs one time per id")
    seconds = map(lshift, map(int, times), repeat(_HASH_BITS))
    return list(map(or_, seconds, map(and_, hashes, repeat(_HASH_MASK))))


def seconds_of(start: float, end: float) -> tuple[int, int]:
    """The first and last whole second of [start, end)."""
    return int(start), max(int(start), math.ceil(end) - 1)


def candidate_keys(ident: str, start: float, end: float) -> Select[tuple[int]]:
    """The keys a call with id `ident` in [start, end) can have, one per second, generated
    by a recursive CTE in the database (for an IN on the key column)."""
    first, last = seconds_of(start, end)
    h = id_hash(ident)
    lo, hi = (first << _HASH_BITS) | h, (last << _HASH_BITS) | h
    seed = select(literal(lo, BigInteger).label("k")).cte(recursive=True)
    keys = seed.union_all(select((seed.c.k + SECOND).label("k")).where(seed.c.k < hi))
    return select(keys.c.k)


def windows_back(now: float, oldest: float) -> Iterator[tuple[float, float]]:
    """[start, end) ranges from now back to `oldest`, newest first (see SEARCH_WINDOWS)."""
    end = now + 60  # clocks of gateway nodes may run a little ahead
    for back in SEARCH_WINDOWS:
        start = max(oldest, now - back)
        if start < end:
            yield start, end
        end = start
        if end <= oldest:
            return
    if oldest < end:
        yield oldest, end


__all__ = ["SECOND", "call_key", "candidate_keys", "id_hash", "keys_of", "windows_back"]
