"""response: on-call schedule overrides

Revision ID: 0007_oncall
Revises: 0006_response
Create Date: 2026-12-06 22:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hypercare.store.base

revision: str = "0007_oncall"
down_revision: str | Sequence[str] | None = "0006_response"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "response_oncall_overrides",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("schedule", sa.String(length=80), nullable=False),
        sa.Column("person", sa.String(length=80), nullable=False),
        sa.Column("start_at", hypercare.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("end_at", hypercare.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", hypercare.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_response_oncall_overrides")),
    )
    with op.batch_alter_table("response_oncall_overrides", schema=None) as batch_op:
        batch_op.create_index(
            "ix_response_oncall_overrides_span", ["schedule", "end_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("response_oncall_overrides", schema=None) as batch_op:
        batch_op.drop_index("ix_response_oncall_overrides_span")
    op.drop_table("response_oncall_overrides")
