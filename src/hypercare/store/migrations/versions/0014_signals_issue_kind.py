"""signals: one index on (issue_id, kind) in place of the one on issue_id

An issue's user reports (how many people it affects, read at every batch of the intake that
raises priorities) were found through the index on kind, which holds every user report of
every issue; (issue_id, kind) finds them directly, and serves lookups by issue_id alone as
the old index did.

Revision ID: 0014_signals_issue_kind
Revises: 0005_telemetry_segments
Create Date: 2026-12-07 07:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014_signals_issue_kind"
down_revision: str | Sequence[str] | None = "0005_telemetry_segments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("signals") as batch_op:
        batch_op.create_index("ix_signals_issue_kind", ["issue_id", "kind"], unique=False)
        batch_op.drop_index(batch_op.f("ix_signals_issue_id"))


def downgrade() -> None:
    with op.batch_alter_table("signals") as batch_op:
        batch_op.create_index(batch_op.f("ix_signals_issue_id"), ["issue_id"], unique=False)
        batch_op.drop_index("ix_signals_issue_kind")
