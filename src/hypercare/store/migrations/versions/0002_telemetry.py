"""telemetry: nodes, batches, calls, rollups

Revision ID: 0002_telemetry
Revises: 0001_foundation
Create Date: 2026-11-27 21:18:21.680983
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hypercare.store.base

revision: str = "0002_telemetry"
down_revision: str | Sequence[str] | None = "0001_foundation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "telemetry_batches",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("batch_key", sa.String(length=64), nullable=False),
        sa.Column("node", sa.String(length=120), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("aggregated", sa.Boolean(), nullable=False),
        sa.Column("flushed_until", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telemetry_batches")),
        sa.UniqueConstraint("batch_key", name=op.f("uq_telemetry_batches_batch_key")),
    )
    with op.batch_alter_table("telemetry_batches", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_telemetry_batches_aggregated"), ["aggregated"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_telemetry_batches_received_at"), ["received_at"], unique=False
        )

    op.create_table(
        "telemetry_calls",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
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
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telemetry_calls")),
    )
    with op.batch_alter_table("telemetry_calls", schema=None) as batch_op:
        batch_op.create_index("ix_telemetry_calls_batch_id", ["batch_id"], unique=False)
        batch_op.create_index("ix_telemetry_calls_request_id", ["request_id"], unique=False)
        batch_op.create_index("ix_telemetry_calls_route_ts", ["route", "ts"], unique=False)
        batch_op.create_index(batch_op.f("ix_telemetry_calls_ts"), ["ts"], unique=False)

    op.create_table(
        "telemetry_hours",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("dim", sa.String(length=10), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("c4xx", sa.BigInteger(), nullable=False),
        sa.Column("c5xx", sa.BigInteger(), nullable=False),
        sa.Column("auth_failures", sa.BigInteger(), nullable=False),
        sa.Column("rate_limited", sa.BigInteger(), nullable=False),
        sa.Column("upstream_errors", sa.BigInteger(), nullable=False),
        sa.Column("bytes_in", sa.BigInteger(), nullable=False),
        sa.Column("bytes_out", sa.BigInteger(), nullable=False),
        sa.Column("codes", sa.Text(), nullable=False),
        sa.Column("errors", sa.Text(), nullable=False),
        sa.Column("hist_total", sa.Text(), nullable=False),
        sa.Column("hist_upstream", sa.Text(), nullable=False),
        sa.Column("hist_gateway", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telemetry_hours")),
    )
    with op.batch_alter_table("telemetry_hours", schema=None) as batch_op:
        batch_op.create_index("ix_telemetry_hours_bucket", ["bucket"], unique=False)
        batch_op.create_index(
            "ix_telemetry_hours_dim_key_bucket", ["dim", "key", "bucket"], unique=False
        )

    op.create_table(
        "telemetry_minutes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("dim", sa.String(length=10), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("c4xx", sa.BigInteger(), nullable=False),
        sa.Column("c5xx", sa.BigInteger(), nullable=False),
        sa.Column("auth_failures", sa.BigInteger(), nullable=False),
        sa.Column("rate_limited", sa.BigInteger(), nullable=False),
        sa.Column("upstream_errors", sa.BigInteger(), nullable=False),
        sa.Column("bytes_in", sa.BigInteger(), nullable=False),
        sa.Column("bytes_out", sa.BigInteger(), nullable=False),
        sa.Column("codes", sa.Text(), nullable=False),
        sa.Column("errors", sa.Text(), nullable=False),
        sa.Column("hist_total", sa.Text(), nullable=False),
        sa.Column("hist_upstream", sa.Text(), nullable=False),
        sa.Column("hist_gateway", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telemetry_minutes")),
    )
    with op.batch_alter_table("telemetry_minutes", schema=None) as batch_op:
        batch_op.create_index("ix_telemetry_minutes_bucket", ["bucket"], unique=False)
        batch_op.create_index(
            "ix_telemetry_minutes_dim_key_bucket", ["dim", "key", "bucket"], unique=False
        )

    op.create_table(
        "telemetry_nodes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", hypercare.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", hypercare.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telemetry_nodes")),
    )
    with op.batch_alter_table("telemetry_nodes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_telemetry_nodes_token_hash"), ["token_hash"], unique=True
        )

    op.create_table(
        "telemetry_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telemetry_state")),
        sa.UniqueConstraint("name", name=op.f("uq_telemetry_state_name")),
    )


def downgrade() -> None:
    op.drop_table("telemetry_state")
    with op.batch_alter_table("telemetry_nodes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_telemetry_nodes_token_hash"))

    op.drop_table("telemetry_nodes")
    with op.batch_alter_table("telemetry_minutes", schema=None) as batch_op:
        batch_op.drop_index("ix_telemetry_minutes_dim_key_bucket")
        batch_op.drop_index("ix_telemetry_minutes_bucket")

    op.drop_table("telemetry_minutes")
    with op.batch_alter_table("telemetry_hours", schema=None) as batch_op:
        batch_op.drop_index("ix_telemetry_hours_dim_key_bucket")
        batch_op.drop_index("ix_telemetry_hours_bucket")

    op.drop_table("telemetry_hours")
    with op.batch_alter_table("telemetry_calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_telemetry_calls_ts"))
        batch_op.drop_index("ix_telemetry_calls_route_ts")
        batch_op.drop_index("ix_telemetry_calls_request_id")
        batch_op.drop_index("ix_telemetry_calls_batch_id")

    op.drop_table("telemetry_calls")
    with op.batch_alter_table("telemetry_batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_telemetry_batches_received_at"))
        batch_op.drop_index(batch_op.f("ix_telemetry_batches_aggregated"))

    op.drop_table("telemetry_batches")
