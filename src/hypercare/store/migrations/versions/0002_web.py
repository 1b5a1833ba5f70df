"""console sessions

Revision ID: 0002_web
Revises: 0001_foundation
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hypercare.store.base

revision: str = "0002_web"
down_revision: str | Sequence[str] | None = "0001_foundation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sid_hash", sa.String(length=64), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("created_at", hypercare.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", hypercare.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["token_id"],
            ["api_tokens.id"],
            name=op.f("fk_console_sessions_token_id_api_tokens"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_sessions")),
    )
    with op.batch_alter_table("console_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_console_sessions_sid_hash"), ["sid_hash"], unique=True)
        batch_op.create_index(batch_op.f("ix_console_sessions_token_id"), ["token_id"])
        batch_op.create_index(batch_op.f("ix_console_sessions_expires_at"), ["expires_at"])


def downgrade() -> None:
    op.drop_table("console_sessions")
