"""launch: launches made through the API (their definitions)

Revision ID: 0013_launch_defs
Revises: 0010_launch
Create Date: 2026-12-07 03:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hypercare.store.base

revision: str = "0013_launch_defs"
down_revision: str | Sequence[str] | None = "0010_launch"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = hypercare.store.base.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "launch_defs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_at", UTC(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=120), nullable=False),
        sa.Column("updated_at", UTC(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=120), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_launch_defs")),
        sa.UniqueConstraint("name", name="uq_launch_defs_name"),
    )


def downgrade() -> None:
    op.drop_table("launch_defs")
