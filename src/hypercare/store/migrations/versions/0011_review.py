"""review: post-incident reviews, action items, runbooks and the knowledge-base index

Revision ID: 0011_review
Revises: 0001_foundation
Create Date: 2026-12-07 00:30:00

Full-text search: on SQLite an FTS5 table over `knowledge_docs` (external content, kept
by triggers); on PostgreSQL a GIN index on the documents' tsvector.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hypercare.store.base

revision: str = "0011_review"
down_revision: str | Sequence[str] | None = "0001_foundation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = hypercare.store.base.UTCDateTime

_SQLITE_FTS = (
    "CREATE VIRTUAL TABLE knowledge_fts USING fts5(title, body, content='knowledge_docs', "
    "content_rowid='id', tokenize='porter unicode61')",
    "CREATE TRIGGER knowledge_docs_ai AFTER INSERT ON knowledge_docs BEGIN "
    "INSERT INTO knowledge_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END",
    "CREATE TRIGGER knowledge_docs_ad AFTER DELETE ON knowledge_docs BEGIN "
    "INSERT INTO knowledge_fts(knowledge_fts, rowid, title, body) "
    "VALUES ('delete', old.id, old.title, old.body); END",
    "CREATE TRIGGER knowledge_docs_au AFTER UPDATE ON knowledge_docs BEGIN "
    "INSERT INTO knowledge_fts(knowledge_fts, rowid, title, body) "
    "VALUES ('delete', old.id, old.title, old.body); "
    "INSERT INTO knowledge_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END",
)
_PG_FTS = (
    "CREATE INDEX ix_knowledge_docs_fts ON knowledge_docs "
    "USING gin (to_tsvector('english', title || ' ' || body))"
)


def upgrade() -> None:
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("root_cause", sa.Text(), nullable=False),
        sa.Column("contributing_factors", sa.Text(), nullable=False),
        sa.Column("went_well", sa.Text(), nullable=False),
        sa.Column("went_badly", sa.Text(), nullable=False),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.Column("created_at", UTC(timezone=True), nullable=False),
        sa.Column("updated_at", UTC(timezone=True), nullable=False),
        sa.Column("drafted_by", sa.String(length=120), nullable=False),
        sa.Column("published_at", UTC(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["issue_id"], ["issues.id"], name=op.f("fk_reviews_issue_id_issues"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
        sa.UniqueConstraint("issue_id", name=op.f("uq_reviews_issue_id")),
    )
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reviews_state"), ["state"], unique=False)
    op.create_table(
        "review_action_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("review_id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_review_action_items_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["review_id"],
            ["reviews.id"],
            name=op.f("fk_review_action_items_review_id_reviews"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_action_items")),
        sa.UniqueConstraint("issue_id", name=op.f("uq_review_action_items_issue_id")),
    )
    with op.batch_alter_table("review_action_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_review_action_items_review_id"), ["review_id"], unique=False
        )
    op.create_table(
        "runbooks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("components", sa.JSON(), nullable=False),
        sa.Column("routes", sa.JSON(), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("updated_at", UTC(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=120), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runbooks")),
        sa.UniqueConstraint("name", name=op.f("uq_runbooks_name")),
    )
    op.create_table(
        "knowledge_docs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("ref", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("component", sa.String(length=120), nullable=True),
        sa.Column("updated_at", UTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_docs")),
        sa.UniqueConstraint("kind", "ref", name=op.f("uq_knowledge_docs_kind")),
    )
    with op.batch_alter_table("knowledge_docs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_knowledge_docs_component"), ["component"], unique=False
        )
    op.create_table(
        "review_cursor",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_review_cursor")),
    )
    if op.get_bind().dialect.name == "sqlite":
        for statement in _SQLITE_FTS:
            op.execute(statement)
    else:
        op.execute(_PG_FTS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("knowledge_docs_ai", "knowledge_docs_ad", "knowledge_docs_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS knowledge_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_knowledge_docs_fts")
    op.drop_table("review_cursor")
    with op.batch_alter_table("knowledge_docs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_knowledge_docs_component"))
    op.drop_table("knowledge_docs")
    op.drop_table("runbooks")
    with op.batch_alter_table("review_action_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_action_items_review_id"))
    op.drop_table("review_action_items")
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reviews_state"))
    op.drop_table("reviews")
