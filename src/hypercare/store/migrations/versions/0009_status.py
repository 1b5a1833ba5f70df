"""status: public incidents and updates, maintenance windows, overrides, component states,
templates

Revision ID: 0009_status
Revises: 0001_foundation
Create Date: 2026-12-07 00:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hypercare.store.base

revision: str = "0009_status"
down_revision: str | Sequence[str] | None = "0001_foundation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

When = hypercare.store.base.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "status_incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("impact", sa.String(length=10), nullable=False),
        sa.Column("components", sa.JSON(), nullable=False),
        sa.Column("published", sa.Boolean(), nullable=False),
        sa.Column("suggested_by", sa.String(length=80), nullable=True),
        sa.Column("created_at", When(timezone=True), nullable=False),
        sa.Column("updated_at", When(timezone=True), nullable=False),
        sa.Column("published_at", When(timezone=True), nullable=True),
        sa.Column("monitoring_at", When(timezone=True), nullable=True),
        sa.Column("resolved_at", When(timezone=True), nullable=True),
        sa.Column("last_update_at", When(timezone=True), nullable=True),
        sa.Column("reminded_at", When(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_status_incidents_issue_id_issues"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_incidents")),
    )
    with op.batch_alter_table("status_incidents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_status_incidents_issue_id"), ["issue_id"])
        batch_op.create_index(batch_op.f("ix_status_incidents_status"), ["status"])
        batch_op.create_index(batch_op.f("ix_status_incidents_published"), ["published"])
    op.create_table(
        "status_incident_updates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("affected_components", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=120), nullable=False),
        sa.Column("created_at", When(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["status_incidents.id"],
            name=op.f("fk_status_incident_updates_incident_id_status_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_incident_updates")),
    )
    with op.batch_alter_table("status_incident_updates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_status_incident_updates_incident_id"), ["incident_id"])
    op.create_table(
        "status_maintenances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("components", sa.JSON(), nullable=False),
        sa.Column("scheduled_for", When(timezone=True), nullable=False),
        sa.Column("scheduled_until", When(timezone=True), nullable=False),
        sa.Column("completed_at", When(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=120), nullable=False),
        sa.Column("created_at", When(timezone=True), nullable=False),
        sa.Column("updated_at", When(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_maintenances")),
    )
    with op.batch_alter_table("status_maintenances", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_status_maintenances_scheduled_for"), ["scheduled_for"])
        batch_op.create_index(
            batch_op.f("ix_status_maintenances_scheduled_until"), ["scheduled_until"]
        )
    op.create_table(
        "status_overrides",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("component", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("expires_at", When(timezone=True), nullable=True),
        sa.Column("lifted_at", When(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=120), nullable=False),
        sa.Column("created_at", When(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_overrides")),
    )
    with op.batch_alter_table("status_overrides", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_status_overrides_component"), ["component"])
    op.create_table(
        "status_component_states",
        sa.Column("component", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("since", When(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("component", name=op.f("pk_status_component_states")),
    )
    op.create_table(
        "status_templates",
        sa.Column("scenario", sa.String(length=40), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("updated_by", sa.String(length=120), nullable=False),
        sa.Column("updated_at", When(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scenario", name=op.f("pk_status_templates")),
    )


def downgrade() -> None:
    op.drop_table("status_templates")
    op.drop_table("status_component_states")
    with op.batch_alter_table("status_overrides", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_status_overrides_component"))
    op.drop_table("status_overrides")
    with op.batch_alter_table("status_maintenances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_status_maintenances_scheduled_until"))
        batch_op.drop_index(batch_op.f("ix_status_maintenances_scheduled_for"))
    op.drop_table("status_maintenances")
    with op.batch_alter_table("status_incident_updates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_status_incident_updates_incident_id"))
    op.drop_table("status_incident_updates")
    with op.batch_alter_table("status_incidents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_status_incidents_published"))
        batch_op.drop_index(batch_op.f("ix_status_incidents_status"))
        batch_op.drop_index(batch_op.f("ix_status_incidents_issue_id"))
    op.drop_table("status_incidents")
