"""telemetry: call lookup keys instead of indexes on random ids; rollups by dim and
bucket, with their stored quantiles

Revision ID: 0004_telemetry_keys
Revises: 0003_detection
Create Date: 2026-11-28 00:10:00
"""

from collections.abc import Sequence
from zlib import crc32

import sqlalchemy as sa
from alembic import op

revision: str = "0004_telemetry_keys"
down_revision: str | Sequence[str] | None = "0003_detection"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# A frozen copy of `hypercare.telemetry.callkeys.call_key` as it was at this revision: the
# keys written here must stay the ones the code of this revision reads, whatever the live
# function becomes later (a migration never imports live code).
def _call_key(ident: str, ts: float) -> int:
    return (int(ts) << 31) | (crc32(ident.encode("utf-8", "surrogatepass")) & 0x7FFFFFFF)


_CHUNK = 5000
# the counters the analytics queries read, covered by the (dim, bucket) index (a copy: a
# migration does not follow later changes of the models)
_COUNTERS = (
    "key",
    "requests",
    "c4xx",
    "c5xx",
    "auth_failures",
    "rate_limited",
    "upstream_errors",
    "bytes_in",
    "bytes_out",
    "errors",
)


def _backfill() -> None:
    """Keys of the calls already stored, in chunks (the hash is computed in Python)."""
    conn = op.get_bind()
    calls = sa.table(
        "telemetry_calls",
        sa.column("id", sa.BigInteger),
        sa.column("ts", sa.Float),
        sa.column("request_id", sa.String),
        sa.column("trace_id", sa.String),
        sa.column("request_key", sa.BigInteger),
        sa.column("trace_key", sa.BigInteger),
    )
    after = -1
    while True:
        rows = conn.execute(
            sa.select(calls.c.id, calls.c.ts, calls.c.request_id, calls.c.trace_id)
            .where(calls.c.id > after)
            .order_by(calls.c.id)
            .limit(_CHUNK)
        ).all()
        if not rows:
            return
        conn.execute(
            calls.update()
            .where(calls.c.id == sa.bindparam("b_id"))
            .values(request_key=sa.bindparam("b_rk"), trace_key=sa.bindparam("b_tk")),
            [
                {"b_id": i, "b_rk": _call_key(rid, ts), "b_tk": _call_key(tid, ts)}
                for i, ts, rid, tid in rows
            ],
        )
        after = rows[-1][0]


def upgrade() -> None:
    with op.batch_alter_table("telemetry_calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_key", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("trace_key", sa.BigInteger(), nullable=True))
        batch_op.drop_index("ix_telemetry_calls_request_id")
        batch_op.drop_index("ix_telemetry_calls_trace_id")
    _backfill()
    with op.batch_alter_table("telemetry_calls", schema=None) as batch_op:
        batch_op.alter_column("request_key", existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column("trace_key", existing_type=sa.BigInteger(), nullable=False)
        batch_op.create_index("ix_telemetry_calls_request_key", ["request_key"], unique=False)
        batch_op.create_index("ix_telemetry_calls_trace_key", ["trace_key"], unique=False)
    for table in ("telemetry_minutes", "telemetry_hours"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(
                f"ix_{table}_dim_bucket", ["dim", "bucket", *_COUNTERS], unique=False
            )
            # rows written before stay NULL: readers then use their histograms
            for q in ("p50", "p95", "p99"):
                batch_op.add_column(sa.Column(q, sa.Float(), nullable=True))


def downgrade() -> None:
    for table in ("telemetry_minutes", "telemetry_hours"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f"ix_{table}_dim_bucket")
            for q in ("p50", "p95", "p99"):
                batch_op.drop_column(q)
    with op.batch_alter_table("telemetry_calls", schema=None) as batch_op:
        batch_op.drop_index("ix_telemetry_calls_trace_key")
        batch_op.drop_index("ix_telemetry_calls_request_key")
        batch_op.create_index("ix_telemetry_calls_trace_id", ["trace_id"], unique=False)
        batch_op.create_index("ix_telemetry_calls_request_id", ["request_id"], unique=False)
        batch_op.drop_column("trace_key")
        batch_op.drop_column("request_key")
