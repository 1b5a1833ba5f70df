"""Decoding batches: the one-pass typed decode and the field-by-field path agree, and
every bad record is named by its index and field."""

from __future__ import annotations

import time

import orjson
import pytest

from hypercare.errors import InvalidInput
from hypercare.telemetry.capture import CallCapture
from hypercare.telemetry.wire import decode_batch, encode_batch
from tests.telemetry.factory import record


def rows_of(n: int) -> list[list[object]]:
    now = time.time()
    body = encode_batch(
        "batch-0001", [record(now + i, total_ms=float(i)) for i in range(n)], sent_at=now
    )
    rows: list[list[object]] = orjson.loads(body)["records"]
    return rows


def batch(rows: list[list[object]]) -> bytes:
    return orjson.dumps({"v": 1, "batch": "batch-0002", "records": rows})


def test_rows_as_the_shipper_writes_them_decode_to_the_same_records() -> None:
    now = time.time()
    records = [record(now + i, total_ms=float(i), status=200 + i) for i in range(50)]
    got = decode_batch(encode_batch("batch-0001", records, sent_at=now))
    assert got.records == records
    assert {type(r).__name__ for r in got.records} == {"CallRecord"}
    assert got.records[3].status == 203 and got.records[3].total_ms == 3.0


@pytest.mark.parametrize(
    ("pos", "value", "expected"),
    [
        (6, True, "records[37][6] (status) has the wrong type bool"),
        (6, "200", "records[37][6] (status) has the wrong type str"),
        (1, None, "records[37][1] (route) has the wrong type NoneType"),
        (0, 5e9, "records[37] time 5000000000.0 is not a Unix time"),
        (12, -1.0, "records[37] total_ms -1.0 must be a finite duration"),
        (11, 1e13, "records[37] upstream_ms 10000000000000.0 must be a finite duration"),
    ],
)
def test_one_bad_field_among_many_exact_rows_is_named(
    pos: int, value: object, expected: str
) -> None:
    rows = rows_of(80)
    rows[37][pos] = value
    with pytest.raises(InvalidInput) as err:
        decode_batch(batch(rows))
    assert expected in str(err.value)


def test_unusual_but_valid_rows_are_accepted() -> None:
    rows = rows_of(10)
    rows[4][10] = 1  # an int where a float is expected
    rows[5] = rows[5][:17]  # the optional trailing fields left out
    got = decode_batch(batch(rows))
    assert len(got.records) == 10
    assert got.records[4].gateway_ms == 1 and got.records[5].user_agent == ""
    # what only the stdlib parser reads: a lone surrogate in a string
    body = batch(rows_of(3)).replace(b'"GET"', b'"G\\ud800T"', 1)
    got = decode_batch(body)
    assert got.records[0].method == "G\ud800T" and len(got.records) == 3
    # counts sent as floats
    doc = orjson.loads(batch(rows_of(2)))
    doc["dropped_total"], doc["spool_bytes"] = 3.0, 10.0
    got = decode_batch(orjson.dumps(doc))
    assert (got.dropped_total, got.spool_bytes) == (3, 10)


def test_bad_rows_are_named() -> None:
    rows = rows_of(10)
    rows[6] = rows[6][:3]
    with pytest.raises(InvalidInput, match=r"records\[6\] must be an array"):
        decode_batch(batch(rows))
    rows[6] = "not a row"  # type: ignore[call-overload]
    with pytest.raises(InvalidInput, match=r"records\[6\] must be an array"):
        decode_batch(batch(rows))


def test_captures_carry_query_truncation_and_redaction_and_old_ones_still_decode() -> None:
    now = time.time()
    cap = CallCapture((("Accept", "*/*"),), (), b"{}", b"x" * 10, "a=1", True, False, redacted=True)
    got = decode_batch(encode_batch("batch-0003", [record(now)], {0: cap}, sent_at=now))
    assert got.captures == {0: cap}
    old = orjson.loads(encode_batch("batch-0004", [record(now)], sent_at=now))
    old["captures"] = [[0, [["Accept", "*/*"]], [], "e30=", ""]]  # five elements
    assert decode_batch(orjson.dumps(old)).captures == {
        0: CallCapture((("Accept", "*/*"),), (), b"{}", b"")
    }
    for extra, message in (
        ([], "must be an object"),
        ({"query": 3}, "query"),
        ({"query": "q" * 70000}, "at most"),
        ({"redacted": "yes"}, "booleans"),
    ):
        old["captures"] = [[0, [], [], "", "", extra]]
        with pytest.raises(InvalidInput, match=message):
            decode_batch(orjson.dumps(old))
