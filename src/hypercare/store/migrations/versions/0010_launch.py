"""launch: states set by people, exit-criteria evaluations

Revision ID: 0010_launch
Revises: 0001_foundation
Create Date: 2026-12-07 00:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hypercare.store.base

revision: str = "0010_launch"
down_revision: str | Sequence[str] | None = "0001_foundation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "launch_states",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("end_at", hypercare.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("changed_at", hypercare.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(length=120), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("history", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_launch_states")),
        sa.UniqueConstraint("name", name="uq_launch_states_name"),
    )
    op.create_table(
        "launch_evaluations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("launch", sa.String(length=100), nullable=False),
        sa.Column("at", hypercare.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("passing", sa.Integer(), nullable=False),
        sa.Column("criteria", sa.Integer(), nullable=False),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_launch_evaluations")),
    )
    with op.batch_alter_table("launch_evaluations", schema=None) as batch_op:
        batch_op.create_index("ix_launch_evaluations_launch_at", ["launch", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("launch_evaluations", schema=None) as batch_op:
        batch_op.drop_index("ix_launch_evaluations_launch_at")
    op.drop_table("launch_evaluations")
    op.drop_table("launch_states")
