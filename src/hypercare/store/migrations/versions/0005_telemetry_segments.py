"""telemetry: call detail as one block per batch, with lookup keys, instead of a row per call

Revision ID: 0005_telemetry_segments
Revises: 0004_telemetry_keys
Create Date: 2026-11-28 04:00:00
"""

import json
from collections.abc import Sequence
from typing import Any
from zlib import crc32

import sqlalchemy as sa
import zstandard
from alembic import op

revision: str = "0005_telemetry_segments"
down_revision: str | Sequence[str] | None = "0004_telemetry_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# A frozen copy of `hypercare.telemetry.callkeys.call_key` as it was at this revision: the
# keys written here must stay the ones the code of this revision reads, whatever the live
# function becomes later (a migration never imports live code).
def _call_key(ident: str, ts: float) -> int:
    return (int(ts) << 31) | (crc32(ident.encode("utf-8", "surrogatepass")) & 0x7FFFFFFF)


# copies, as of this revision (a migration does not follow later changes of the code)
_FIELDS = (
    "ts",
    "route",
    "consumer",
    "method",
    "path_template",
    "path",
    "status",
    "request_bytes",
    "response_bytes",
    "target",
    "gateway_ms",
    "upstream_ms",
    "total_ms",
    "error",
    "client_ip",
    "request_id",
    "trace_id",
    "upstream",
    "user_agent",
)
_POS_BITS = 15
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _calls_table() -> sa.TableClause:
    return sa.table(
        "telemetry_calls",
        sa.column("id", sa.BigInteger),
        sa.column("batch_id", sa.BigInteger),
        *(sa.column(f) for f in _FIELDS),
        sa.column("capture", sa.Text),
        sa.column("request_key", sa.BigInteger),
        sa.column("trace_key", sa.BigInteger),
    )


_SEGMENTS = sa.table(
    "telemetry_segments",
    sa.column("batch_id", sa.BigInteger),
    sa.column("first_ts", sa.Float),
    sa.column("last_ts", sa.Float),
    sa.column("routes", sa.Text),
    sa.column("consumers", sa.Text),
    sa.column("statuses", sa.Text),
    sa.column("errors", sa.Text),
    sa.column("calls", sa.LargeBinary),
)
_ROUTES = sa.table(
    "telemetry_segment_routes",
    sa.column("batch_id", sa.BigInteger),
    sa.column("route", sa.String),
    sa.column("first_ts", sa.Float),
    sa.column("last_ts", sa.Float),
    sa.column("statuses", sa.Text),
    sa.column("errors", sa.Text),
)
_KEYS = sa.table(
    "telemetry_call_keys", sa.column("key", sa.BigInteger), sa.column("ref", sa.BigInteger)
)


def _tagset(values: Any) -> str:
    return "\n" + "".join(f"{v}\n" for v in sorted(set(values)))


def _move_calls_into_blocks() -> None:
    """Each batch's stored calls become its block (in the order they were stored)."""
    conn = op.get_bind()
    calls = _calls_table()
    batch_ids = [b for (b,) in conn.execute(sa.select(calls.c.batch_id).distinct())]
    for batch_id in batch_ids:
        found = conn.execute(
            sa.select(*(calls.c[f] for f in _FIELDS), calls.c.capture)
            .where(calls.c.batch_id == batch_id)
            .order_by(calls.c.id)
        ).all()
        rows: list[list[Any]] = []
        keys: list[dict[str, int]] = []
        for pos, r in enumerate(found[: 1 << _POS_BITS]):
            row: list[Any] = list(r[: len(_FIELDS)])
            if r.capture:
                row.append(json.loads(r.capture))
            rows.append(row)
            base = (batch_id << (_POS_BITS + 1)) | (pos << 1)
            keys.append({"key": _call_key(r.request_id, r.ts), "ref": base})
            keys.append({"key": _call_key(r.trace_id, r.ts), "ref": base | 1})
        times = [r[0] for r in rows]
        conn.execute(
            _SEGMENTS.insert().values(
                batch_id=batch_id,
                first_ts=min(times),
                last_ts=max(times),
                routes=_tagset(r[1] for r in rows),
                consumers=_tagset(r[2] for r in rows),
                statuses=_tagset(r[6] for r in rows),
                errors=_tagset(r[13] for r in rows if r[13]),
                calls=json.dumps(rows).encode(),
            )
        )
        conn.execute(_KEYS.insert(), keys)
        parts: dict[str, tuple[set[Any], set[Any]]] = {}
        for row in rows:
            codes, errors = parts.setdefault(row[1], (set(), set()))
            codes.add(row[6])
            if row[13]:
                errors.add(row[13])
        conn.execute(
            _ROUTES.insert(),
            [
                {
                    "batch_id": batch_id,
                    "route": route,
                    "first_ts": min(times),
                    "last_ts": max(times),
                    "statuses": _tagset(codes),
                    "errors": _tagset(errors),
                }
                for route, (codes, errors) in parts.items()
            ],
        )


def upgrade() -> None:
    op.create_table(
        "telemetry_segments",
        sa.Column("batch_id", _ID, autoincrement=False, nullable=False),
        sa.Column("first_ts", sa.Float(), nullable=False),
        sa.Column("last_ts", sa.Float(), nullable=False),
        sa.Column("routes", sa.Text(), nullable=False),
        sa.Column("consumers", sa.Text(), nullable=False),
        sa.Column("statuses", sa.Text(), nullable=False),
        sa.Column("errors", sa.Text(), nullable=False),
        sa.Column("calls", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("batch_id", name=op.f("pk_telemetry_segments")),
    )
    with op.batch_alter_table("telemetry_segments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_telemetry_segments_last_ts"), ["last_ts"], unique=False
        )
    op.create_table(
        "telemetry_segment_routes",
        sa.Column("batch_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("route", sa.String(length=200), nullable=False),
        sa.Column("first_ts", sa.Float(), nullable=False),
        sa.Column("last_ts", sa.Float(), nullable=False),
        sa.Column("statuses", sa.Text(), nullable=False),
        sa.Column("errors", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("batch_id", "route", name=op.f("pk_telemetry_segment_routes")),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("telemetry_segment_routes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_telemetry_segment_routes_route_last_ts", ["route", "last_ts"], unique=False
        )
    op.create_table(
        "telemetry_call_keys",
        sa.Column("key", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("ref", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("key", "ref", name=op.f("pk_telemetry_call_keys")),
        sqlite_with_rowid=False,
    )
    _move_calls_into_blocks()
    op.drop_table("telemetry_calls")


def _restore_calls() -> None:
    conn = op.get_bind()
    calls = _calls_table()
    for batch_id, data in conn.execute(sa.select(_SEGMENTS.c.batch_id, _SEGMENTS.c.calls)):
        values = []
        if data[:4] == _ZSTD_MAGIC:  # blocks written since compression came in
            data = zstandard.ZstdDecompressor().decompress(data)
        for row in json.loads(data):
            value = dict(zip(_FIELDS, row[: len(_FIELDS)], strict=True))
            value["batch_id"] = batch_id
            value["capture"] = json.dumps(row[-1]) if len(row) > len(_FIELDS) else None
            value["request_key"] = _call_key(value["request_id"], value["ts"])
            value["trace_key"] = _call_key(value["trace_id"], value["ts"])
            values.append(value)
        if values:
            conn.execute(calls.insert(), values)


def downgrade() -> None:
    op.create_table(
        "telemetry_calls",
        sa.Column("id", _ID, nullable=False),
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("route", sa.String(length=200), nullable=False),
        sa.Column("consumer", sa.String(length=200), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("path_template", sa.String(length=500), nullable=False),
        sa.Column("path", sa.String(length=2000), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("request_bytes", sa.BigInteger(), nullable=False),
        sa.Column("response_bytes", sa.BigInteger(), nullable=False),
        sa.Column("target", sa.String(length=300), nullable=False),
        sa.Column("gateway_ms", sa.Float(), nullable=False),
        sa.Column("upstream_ms", sa.Float(), nullable=False),
        sa.Column("total_ms", sa.Float(), nullable=False),
        sa.Column("error", sa.String(length=40), nullable=False),
        sa.Column("client_ip", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("trace_id", sa.String(length=64), nullable=False),
        sa.Column("upstream", sa.String(length=200), nullable=False),
        sa.Column("user_agent", sa.String(length=500), nullable=False),
        sa.Column("capture", sa.Text(), nullable=True),
        sa.Column("request_key", sa.BigInteger(), nullable=False),
        sa.Column("trace_key", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telemetry_calls")),
    )
    with op.batch_alter_table("telemetry_calls", schema=None) as batch_op:
        batch_op.create_index("ix_telemetry_calls_batch_id", ["batch_id"], unique=False)
        batch_op.create_index("ix_telemetry_calls_route_ts", ["route", "ts"], unique=False)
        batch_op.create_index(batch_op.f("ix_telemetry_calls_ts"), ["ts"], unique=False)
        batch_op.create_index("ix_telemetry_calls_request_key", ["request_key"], unique=False)
        batch_op.create_index("ix_telemetry_calls_trace_key", ["trace_key"], unique=False)
    _restore_calls()
    op.drop_table("telemetry_call_keys")
    with op.batch_alter_table("telemetry_segment_routes", schema=None) as batch_op:
        batch_op.drop_index("ix_telemetry_segment_routes_route_last_ts")
    op.drop_table("telemetry_segment_routes")
    with op.batch_alter_table("telemetry_segments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_telemetry_segments_last_ts"))
    op.drop_table("telemetry_segments")
