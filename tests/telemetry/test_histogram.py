"""The histogram's stated error bound, checked against exact percentiles on random data."""

from __future__ import annotations

import json
import math
import random

import pytest

from hypercare.gateway.records import CallRecord
from hypercare.telemetry.aggregate import (
    UPSTREAM_ERRORS,
    Aggregate,
    Key,
    aggregate_into,
    buckets_of,
)
from hypercare.telemetry.histogram import (
    ALPHA,
    MAX_MS,
    MIN_MS,
    Dense,
    Histogram,
    bucket_of,
    unpack_dumped,
)
from tests.telemetry.factory import record

QS = (0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0)


def exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


def distributions(rng: random.Random) -> dict[str, list[float]]:
    return {
        "lognormal": [rng.lognormvariate(3, 1.5) for _ in range(20000)],
        "uniform": [rng.uniform(0.01, 5000) for _ in range(20000)],
        "pareto": [rng.paretovariate(1.2) for _ in range(20000)],
        "bimodal": [
            rng.gauss(5, 0.5) if rng.random() < 0.9 else rng.gauss(800, 50) for _ in range(20000)
        ],
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_quantiles_within_the_stated_relative_error(seed: int) -> None:
    for name, values in distributions(random.Random(seed)).items():
        values = [max(v, 0.001) for v in values]
        h = Histogram.of(values)
        assert h.count == len(values)
        for q in QS:
            got, want = h.quantile(q), exact(values, q)
            assert got is not None
            assert abs(got - want) <= ALPHA * want + 1e-12, (name, q, got, want)


def test_merge_across_nodes_and_minutes_equals_one_histogram_of_everything() -> None:
    rng = random.Random(7)
    parts = [[rng.lognormvariate(2, 1) for _ in range(rng.randrange(1, 3000))] for _ in range(30)]
    merged = Histogram()
    for p in parts:
        merged.merge(Histogram.loads(Histogram.of(p).dumps()))  # as stored, then read back
    everything = [v for p in parts for v in p]
    assert merged.counts == Histogram.of(everything).counts
    for q in QS:
        want = exact(everything, q)
        got = merged.quantile(q)
        assert got is not None and abs(got - want) <= ALPHA * want


def test_quantiles_in_one_pass_match_single_quantiles_and_empty_is_none() -> None:
    h = Histogram.of(random.Random(3).expovariate(0.1) for _ in range(5000))
    assert h.quantiles(QS) == [h.quantile(q) for q in QS]
    assert Histogram().quantile(0.5) is None
    assert Histogram().quantiles((0.5, 0.9)) == [None, None]


def test_zero_and_tiny_values_land_in_the_lowest_bucket() -> None:
    h = Histogram.of([0.0, 0.0, 0.0005])
    assert h.quantile(1.0) == pytest.approx(0.001, rel=ALPHA)


def test_merge_dumped_equals_merge() -> None:
    a = Histogram.of([1, 2, 3, 400])
    b = Histogram.of([2, 5000])
    assert (
        Histogram().merge(a).merge(b).counts == Histogram().merge(a).merge_dumped(b.dumps()).counts
    )
    assert Histogram.loads("").count == 0


def test_dense_merge_of_stored_runs_equals_dict_merge() -> None:
    rng = random.Random(11)
    parts = [
        Histogram.of(rng.lognormvariate(rng.uniform(0, 6), 1) for _ in range(300))
        for _ in range(40)
    ]
    dense = Dense()
    for p in parts:
        dense.merge_dumped(p.dumps())
    dense.merge_dumped("")
    want = Histogram()
    for p in parts:
        want.merge(p)
    assert dense.to_histogram().counts == want.counts
    assert Dense().to_histogram().count == 0


def test_stored_form_falls_back_to_json_for_huge_counts() -> None:
    h = Histogram({5: 2**33, 7: 1})
    assert h.dumps().startswith("[")
    assert Histogram.loads(h.dumps()).counts == h.counts


def test_dense_merges_and_quantiles_equal_the_histograms() -> None:
    rng = random.Random(11)
    parts = [Histogram.of(rng.lognormvariate(3, 1.5) for _ in range(300)) for _ in range(12)]
    parts.append(Histogram({5: 2**33}))  # a count past 32 bits (stored as JSON)
    want = Histogram()
    dense = Dense()
    for h in parts:
        want.merge(h)
        dense.add_packed(*unpack_dumped(h.dumps()))
    qs = (0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 1.0)
    view = dense.view()
    assert view.quantiles(qs) == want.quantiles(qs) == dense.quantiles(qs)
    assert [view.quantile(q) for q in qs] == [want.quantile(q) for q in qs]
    assert view.count == want.count
    assert dense.to_histogram().counts == want.counts
    # a merge into the view turns it into a plain histogram with the summed counts
    view.merge(Histogram({3: 1}))
    want.add_bucket(3)
    assert view.counts == want.counts and view.quantiles(qs) == want.quantiles(qs)
    assert Dense().view().quantiles(qs) == [None] * len(qs)
    assert Dense().view().count == 0


def test_buckets_of_is_bucket_of() -> None:
    rng = random.Random(3)
    values: list[float] = [0, 0.0, 1e-9, MIN_MS, 0.0010001, 1, 1.0, 20, MAX_MS, MAX_MS * 2, 1e11]
    values += [rng.lognormvariate(2, 3) for _ in range(5000)]
    assert list(buckets_of(values)) == [bucket_of(v) for v in values]
    # the paths that skip a clamp: all values above the lowest bucket, none past the last
    for part in (values[4:8], [v for v in values if MIN_MS <= v <= MAX_MS], values[:3], []):
        assert list(buckets_of(iter(part))) == [bucket_of(v) for v in part]


def _one(r: CallRecord) -> Aggregate:
    """The aggregate of one record, counted field by field: the reference."""
    one = Aggregate()
    one.requests = 1
    one.codes = {r.status: 1}
    one.c5xx = int(r.status >= 500)
    one.c4xx = int(400 <= r.status < 500)
    one.auth_failures = int(r.status in (401, 403))
    one.rate_limited = int(r.status == 429)
    if r.error:
        one.errors = {r.error: 1}
        one.upstream_errors = int(r.error in UPSTREAM_ERRORS)
    one.bytes_in, one.bytes_out = r.request_bytes, r.response_bytes
    one.hist_total.add_bucket(bucket_of(r.total_ms))
    if r.target:
        one.hist_upstream.add_bucket(bucket_of(r.upstream_ms))
    one.hist_gateway.add_bucket(bucket_of(r.gateway_ms))
    return one


def test_column_wise_aggregation_equals_counting_record_by_record() -> None:
    rng = random.Random(4)
    t0 = 1_700_000_000.0
    records = [
        record(
            t0 + rng.uniform(0, 300),
            route=rng.choice(("a", "b")),
            consumer=rng.choice(("", "c1", "c2")),
            target=rng.choice(("", "t1")),
            status=rng.choice((200, 201, 401, 403, 404, 429, 500, 503)),
            error=rng.choice(("", "", "timeout", "client_closed")),
            total_ms=rng.lognormvariate(3, 1),
        )
        for _ in range(3000)
    ]
    got: dict[Key, Aggregate] = {}
    buckets = aggregate_into(got, records)
    want: dict[Key, Aggregate] = {}
    for r in records:
        b = int(r.time // 60) * 60
        one = _one(r)
        for k in (("route", r.route, b), ("consumer", r.consumer, b), ("target", r.target, b)):
            if k[1]:
                want.setdefault(k, Aggregate()).merge(one)
    assert buckets == {int(r.time // 60) * 60 for r in records}
    assert got.keys() == want.keys()
    for k, a in want.items():
        mine, theirs = got[k].to_row(*k), a.to_row(*k)
        for field in ("codes", "errors"):
            assert json.loads(mine.pop(field)) == json.loads(theirs.pop(field))
        assert mine == theirs


def test_count_upto_a_bucket_plain_and_dense() -> None:
    from hypercare.telemetry.histogram import Dense, Histogram, bucket_of

    h = Histogram.of([10.0, 20.0, 20.0, 400.0, 900.0])
    limit = bucket_of(300.0)
    assert h.count_upto(limit) == 3
    assert h.count_upto(bucket_of(1.0) - 1) == 0
    dense = Dense()
    dense.merge_dumped(h.dumps())
    view = dense.view()
    assert view.count_upto(limit) == 3 and view.count_upto(10**6) == 5
    assert view.count_upto(bucket_of(0.5) - 5) == 0
