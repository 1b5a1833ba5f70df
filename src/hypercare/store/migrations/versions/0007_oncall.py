"""response: on-call schedule overrides, escalation policy runs

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
    op.create_table(
        "response_escalations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("policy", sa.String(length=80), nullable=False),
        sa.Column("started_at", hypercare.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("last_at", hypercare.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("advance_to", sa.Integer(), nullable=False),
        sa.Column("next_at", hypercare.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("stopped_at", hypercare.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("stop_reason", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_response_escalations_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_response_escalations")),
    )
    with op.batch_alter_table("response_escalations", schema=None) as batch_op:
        batch_op.create_index(
            "uq_response_escalations_issue_policy", ["issue_id", "policy"], unique=True
        )
        batch_op.create_index(
            "ix_response_escalations_due", ["stopped_at", "next_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("response_escalations", schema=None) as batch_op:
        batch_op.drop_index("ix_response_escalations_due")
        batch_op.drop_index("uq_response_escalations_issue_policy")
    op.drop_table("response_escalations")
    with op.batch_alter_table("response_oncall_overrides", schema=None) as batch_op:
        batch_op.drop_index("ix_response_oncall_overrides_span")
    op.drop_table("response_oncall_overrides")
