"""comms: status page subscribers; deliveries of no issue (subscribers' messages)

Revision ID: 0012_comms
Revises: 0007_oncall
Create Date: 2026-12-07 01:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hypercare.store.base

revision: str = "0012_comms"
down_revision: str | Sequence[str] | None = "0007_oncall"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = hypercare.store.base.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "comms_subscribers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("target", sa.String(length=500), nullable=False),
        sa.Column("components", sa.JSON(), nullable=False),
        sa.Column("created_at", UTC(), nullable=False),
        sa.Column("confirmed_at", UTC(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "target", name="uq_comms_subscribers_target"),
    )
    with op.batch_alter_table("response_deliveries") as batch:
        batch.alter_column("issue_id", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM response_deliveries WHERE issue_id IS NULL")
    with op.batch_alter_table("response_deliveries") as batch:
        batch.alter_column("issue_id", existing_type=sa.Integer(), nullable=False)
    op.drop_table("comms_subscribers")
